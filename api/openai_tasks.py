"""A chat UI's background tasks, answered without the model. Pure.

After each answer Open WebUI asks the same model for a title, tags and
follow-up suggestions with long text prompts that begin ``### Task:``
(backend/open_webui/config.py: DEFAULT_TITLE_GENERATION_PROMPT_TEMPLATE,
DEFAULT_TAGS_GENERATION_PROMPT_TEMPLATE,
DEFAULT_FOLLOW_UP_GENERATION_PROMPT_TEMPLATE, and the query, autocomplete and
image-prompt ones), the conversation inside ``<chat_history>`` as
``USER: ...`` / ``ASSISTANT: ...`` lines. PaliGemma cannot write that JSON,
so the door answers from the conversation itself: the title and tags of its
last request, follow-ups that refine it (``core.followups``), and an empty
answer of the asked shape for the others. Never an error: a failed task is
logged by the UI as an upstream failure.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from api.openai_chat import parse_chat
from api.openai_content import RAG_START, RAG_TASK, typed_text
from core.errors import UserInputError
from core.followups import follow_ups, tags_for, title_for
from core.types import Intent

logger = logging.getLogger(__name__)

EMOJI_TASK = "reflect the speaker's likely facial expression"
HISTORY_LINE = re.compile(r"^(USER|ASSISTANT|SYSTEM): ?", re.MULTILINE)
TABLE_ROW = re.compile(r"^\|\s*\S*\s*\d+\s*\|", re.MULTILINE)  # core.render's rows
# The JSON key each task's "### Output:" asks for -> its empty answer.
EMPTY = {"queries": [], "text": "", "prompt": ""}


def answer_task(messages: Any, max_prompt_chars: int) -> str | None:
    """The answer when the last user message is a background task, else None
    (a malformed conversation is left to ``parse_chat``'s 400)."""
    last = _last_user_text(messages)
    if last is None or not is_task(last):
        return None
    return task_answer(last, max_prompt_chars)


def _last_user_text(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # the text parts, images left out
                texts = [p.get("text") for p in content if isinstance(p, dict)]
                content = "\n".join(t for t in texts if isinstance(t, str))
            return content if isinstance(content, str) else None
    return None


def is_task(text: str) -> bool:
    """True for a background task prompt (not Open WebUI's RAG template,
    which wraps a real request)."""
    head = text.lstrip()[:300].lower()
    if EMOJI_TASK in head:
        return True
    return head.startswith(RAG_START) and RAG_TASK not in head


def task_answer(text: str, max_prompt_chars: int) -> str:
    """The answer to the task prompt ``text``: JSON of the shape it asks for."""
    if EMOJI_TASK in text[:300].lower():
        return "🔍"
    template = text.split("<chat_history>", 1)[0]
    intent, found = last_request(chat_history(text), max_prompt_chars)
    answer: dict[str, Any]
    if '"follow_ups"' in template:
        answer = {"follow_ups": follow_ups(intent, found)}
    elif '"tags"' in template:
        answer = {"tags": tags_for(intent)}
    elif '"title"' in template:
        answer = {"title": title_for(intent)}
    else:
        answer = {k: v for k, v in EMPTY.items() if f'"{k}"' in template}
    logger.info("answered a chat UI task without the model: %s", list(answer))
    return json.dumps(answer, ensure_ascii=False)


def chat_history(text: str) -> list[dict[str, str]]:
    """The ``<chat_history>`` of a task prompt as OpenAI messages."""
    start = text.find("<chat_history>")
    end = text.rfind("</chat_history>")
    if start == -1:
        return []
    body = text[start + len("<chat_history>") : end if end > start else None]
    parts = HISTORY_LINE.split(body)
    return [
        {"role": role.lower(), "content": content.strip()}
        for role, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def last_request(
    messages: list[dict[str, str]], max_prompt_chars: int
) -> tuple[Intent | None, int]:
    """The request the conversation's last user turn runs (replayed as the
    door replays a conversation) and how many objects the last answer
    listed; None when there is none."""
    users = [m for m in messages if m["role"] == "user" and typed_text(m["content"])]
    if not users:
        return None, 0
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    found = len(TABLE_ROW.findall(answers[-1])) if answers else 0
    try:
        intent = parse_chat(messages, max_prompt_chars).intent
    except UserInputError as exc:
        logger.info("task history has no request: %s", exc.message)
        return None, found
    return intent, found
