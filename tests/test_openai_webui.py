"""The OpenAI door on Open WebUI 0.12.4's real payloads (issue 24).

The JSON under tests/fixtures/openwebui/ was written by Open WebUI's own code
(tests/fixtures/openwebui/record.py: ``add_file_context`` from
utils/middleware.py, the task templates of config.py rendered by
utils/task.py), so these rows are what the door receives from it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from api.openai_chat import parse_chat
from api.openai_content import typed_text
from api.openai_tasks import answer_task
from core.intent import parse_intent
from core.types import Action

FIXTURES = Path(__file__).parent / "fixtures" / "openwebui"
IMAGE = "data:image/png;base64,AAAA"
LIMIT = 2000  # MAX_PROMPT_CHARS' default


def payload(name: str) -> dict:
    body = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    for message in body["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else ():
            if part.get("type") == "image_url":
                part["image_url"]["url"] = IMAGE
    return body


def first_message() -> list[dict]:
    return payload("first_message")["messages"]


def with_rag(messages: list[dict]) -> list[dict]:
    """Open WebUI's RAG template as it adds it (add_or_update_user_message,
    append=False: before every text part of the last user message)."""
    rag = json.loads((FIXTURES / "rag_template.json").read_text())
    messages = copy.deepcopy(messages)
    for part in messages[-1]["content"]:
        if part["type"] == "text":
            part["text"] = f"{rag['rag_template_with_query']}\n{part['text']}"
    return messages


def reorder(messages: list[dict]) -> list[dict]:
    """The image first, then the typed text, then the attachment list."""
    messages = copy.deepcopy(messages)
    messages[-1]["content"] = list(reversed(messages[-1]["content"]))
    return messages


def plain_string_image(messages: list[dict]) -> list[dict]:
    messages = copy.deepcopy(messages)
    for part in messages[-1]["content"]:
        if part["type"] == "image_url":
            part["image_url"] = part["image_url"]["url"]
    return messages


def with_system(messages: list[dict]) -> list[dict]:
    system = {"role": "system", "content": "You are a helpful assistant. Describe"}
    return [system, *messages]


def follow_up(messages: list[dict], text: str) -> list[dict]:
    answer = {"role": "assistant", "content": "| 🟥 1 | red square | 4 | 4 | 9 | 9 |"}
    return [*messages, answer, {"role": "user", "content": text}]


# (messages, prompt the model gets, photo name shown) # case
SHAPES = [
    (first_message(), "detect red square", "squares.jpg"),  # the exact first message
    (with_rag(first_message()), "detect red square", "squares.jpg"),  # + RAG context
    (reorder(first_message()), "detect red square", "squares.jpg"),  # any order
    (plain_string_image(first_message()), "detect red square", "squares.jpg"),
    (with_system(first_message()), "detect red square", "squares.jpg"),  # system
    (
        follow_up(first_message(), "now as masks please"),
        "segment red square",
        "squares.jpg",
    ),  # a refinement after the first answer
    (
        follow_up(first_message(), "what about the blue squares?"),
        "detect blue square",
        "squares.jpg",
    ),  # another target
]


@pytest.mark.parametrize(("messages", "prompt", "name"), SHAPES)
def test_open_webui_messages_run_what_was_typed(messages, prompt, name) -> None:
    request = parse_chat(messages, LIMIT)
    assert request.intent.prompt == prompt
    assert request.image_url == IMAGE
    assert request.image_name == name


@pytest.mark.parametrize(
    ("text", "typed"),
    [
        (
            '<attached_files>\n<file type="file" id="a" name="cat.png"/>\n'
            "</attached_files>\n\nhi",
            "hi",
        ),
        ('x <source id="1">detect dogs</source> y', "x y"),  # retrieved text
        ('<source id="1" name="a"/>detect dog', "detect dog"),  # self-closing
        ("<context>segment cats</context>\ncaption", "caption"),
        ("<user_query>detect the cup</user_query>", "detect the cup"),  # old RAG
        ("<attached_files>never closed detect dog", ""),  # unclosed: all dropped
        ("detect the red squares", "detect the red squares"),  # nothing added
    ],
)
def test_typed_text_drops_what_the_ui_added(text: str, typed: str) -> None:
    assert " ".join(typed_text(text).split()) == typed


# (task fixture, the JSON it answers) # case
TASKS = [
    ("task_title", {"title": "Red square detection"}),
    ("task_tags", {"tags": ["Technology", "Computer Vision", "Object Detection"]}),
    ("task_queries", {"queries": []}),
    ("task_image_prompt", {"prompt": ""}),
]


@pytest.mark.parametrize(("name", "expected"), TASKS)
def test_tasks_get_the_json_they_ask_for(name: str, expected: dict) -> None:
    body = payload(name)
    assert json.loads(answer_task(body["messages"], LIMIT)) == expected


def test_follow_ups_refine_the_last_request() -> None:
    body = payload("task_follow_ups")
    answer = json.loads(answer_task(body["messages"], LIMIT))
    follow_ups = answer["follow_ups"]
    assert follow_ups[:2] == ["now as masks", "only 1 and 3"]  # 3 objects listed
    assert "zoom into the top left" in follow_ups
    previous = parse_intent("detect the red squares")
    for phrase in follow_ups:  # each one runs, or redraws, never asks back
        action = parse_intent(phrase, previous=previous).action
        assert action in (Action.RUN, Action.VIEW, Action.UNDO), phrase


def test_a_task_longer_than_max_prompt_chars_is_answered() -> None:
    body = payload("task_follow_ups")
    content = body["messages"][0]["content"]
    body["messages"][0]["content"] = content.replace(
        "ASSISTANT: ", "ASSISTANT: " + "x" * LIMIT
    )
    assert len(body["messages"][0]["content"]) > LIMIT
    assert "follow_ups" in json.loads(answer_task(body["messages"], LIMIT))


def test_the_emoji_task_gets_an_emoji_and_real_requests_are_not_tasks() -> None:
    assert answer_task(payload("task_emoji")["messages"], LIMIT) == "🔍"
    assert answer_task(first_message(), LIMIT) is None
    assert answer_task(with_rag(first_message()), LIMIT) is None  # RAG: a request
    assert answer_task("not a list", LIMIT) is None  # left to parse_chat's 400


def test_a_task_without_history_answers_anyway() -> None:
    task = '### Task:\nGenerate a title.\n### Output:\n{ "title": "..." }'
    answer = answer_task([{"role": "user", "content": task}], LIMIT)
    assert json.loads(answer) == {"title": "Photo analysis"}
