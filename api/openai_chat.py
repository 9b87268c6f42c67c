"""``/v1/chat/completions`` messages -> what the chat would do. Pure parsing.

An OpenAI-compatible client (Open WebUI, LM Studio, the ``openai`` package)
sends the whole conversation every time. The user turns are replayed through
``core.intent.parse_intent`` so that "also the dog" after "segment the cat"
becomes ``segment cat ; dog``; only the last request runs the model, on the
photo it names ("on the first image") or the newest one attached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from api.openai_content import attached_image_names, typed_text
from core.conversation import Conversation, ResultSummary
from core.errors import UserInputError
from core.intent import parse_intent
from core.service import runs_model
from core.types import Intent

logger = logging.getLogger(__name__)

MAX_MESSAGES = 200  # a long chat; beyond this the client should start a new one
MAX_IMAGES = 32  # image parts over the whole conversation
# One request replays at most this much of the conversation's user text (the
# newest turns; the last one always): parsing costs CPU under the GIL, and a
# client resends the whole conversation with every request.
REPLAY_TURNS = 50
REPLAY_CHARS = 8_000
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
NO_IMAGE = (
    "Attach a photo first (an image_url content part: a data: URI, or a URL "
    "where the server allows them), then ask e.g. 'segment the cat'."
)


@dataclass(frozen=True)
class ChatRequest:
    """The last request of a conversation, ready to run.

    ``intent`` is what the chat would run (or answer without the model when
    it does not: ``core.service.runs_model``); ``image_url`` the chosen photo's URL (a
    data URI or http(s)), None when the conversation has none;
    ``image_number`` its 1-based position among the conversation's photos;
    ``image_name`` its file name when the client listed it (Open WebUI's
    ``<attached_files>``), else None.
    """

    intent: Intent
    image_url: str | None
    image_number: int
    image_count: int
    image_name: str | None = None


Turn = tuple[str, list[str], list[str]]  # typed text, image URLs, image names


def _parts(message: dict[str, Any], index: int) -> Turn:
    """The typed text, the image URLs and the attached image names of one
    message (a string or content parts, in any order and number)."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        text = content or ""
        return typed_text(text), [], attached_image_names(text)
    if not isinstance(content, list):
        raise UserInputError(
            f"messages[{index}].content must be a string or a list of parts, "
            f"got {type(content).__name__}."
        )
    texts, images = [], []
    for number, part in enumerate(content):
        where = f"messages[{index}].content[{number}]"
        if not isinstance(part, dict):
            raise UserInputError(f"{where} must be an object.")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise UserInputError(f"{where}.text must be a string.")
            texts.append(text)
        elif kind == "image_url":  # {"url": ...} or, from some clients, the URL
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url.strip():
                raise UserInputError(f"{where}.image_url.url must be a string.")
            images.append(url.strip())
        else:
            raise UserInputError(
                f"{where}.type must be 'text' or 'image_url', got {kind!r}."
            )
    typed = [part for part in (typed_text(text) for text in texts) if part]
    names = [name for text in texts for name in attached_image_names(text)]
    return "\n".join(typed), images, names


def _user_turns(messages: Any) -> list[Turn]:
    """Each user message's text and images, in order; 400 for a bad shape."""
    if not isinstance(messages, list) or not messages:
        raise UserInputError("'messages' must be a non-empty list of messages.")
    if len(messages) > MAX_MESSAGES:
        raise UserInputError(
            f"Send at most {MAX_MESSAGES} messages; start a new conversation."
        )
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise UserInputError(f"messages[{index}] must be an object.")
        role = message.get("role")
        if role not in ROLES:
            raise UserInputError(
                f"messages[{index}].role must be one of {sorted(ROLES)}, got {role!r}."
            )
        text, images, names = _parts(message, index)
        if role == "user":  # system prompts never shape the request
            turns.append((text, images, names))
        elif images:
            logger.info("ignored %d image(s) in a %s message", len(images), role)
    if not turns:
        raise UserInputError("The conversation has no user message.")
    return turns


def _choose_image(images: list[str], intent: Intent) -> tuple[str | None, int]:
    """The photo the request names ("1", "2", "last"), else the newest."""
    if not images:
        return None, 0
    ref = intent.image_ref
    if ref and ref.isdigit():
        number = int(ref)
        if not 1 <= number <= len(images):
            raise UserInputError(
                f"There is no image {number}: this conversation has "
                f"{len(images)} photo(s)."
            )
        return images[number - 1], number
    return images[-1], len(images)


def _replayed(texts: list[str]) -> int:
    """Index of the first turn to replay: the newest turns, at most
    ``REPLAY_TURNS`` of them and ``REPLAY_CHARS`` characters (the last always)."""
    first, total = len(texts) - 1, len(texts[-1])
    while first > 0 and len(texts) - first < REPLAY_TURNS:
        total += len(texts[first - 1])
        if total > REPLAY_CHARS:
            break
        first -= 1
    return first


def parse_chat(messages: Any, max_prompt_chars: int) -> ChatRequest:
    """Replay the user turns; the last one is the request. 400 for bad input.

    Earlier requests only shape the last ("also the dog", "undo", "in
    Spanish"); earlier clarifying questions or help requests are skipped.
    Only the newest turns are replayed (``_replayed``); the photos of every
    turn count, so "image 1" is still the conversation's first photo.
    """
    turns = _user_turns(messages)
    texts = [text.strip() for text, _, _ in turns]
    for text in texts:
        if len(text) > max_prompt_chars:
            raise UserInputError(
                f"A message is longer than {max_prompt_chars} characters "
                "(MAX_PROMPT_CHARS); shorten it."
            )
    first = _replayed(texts)
    images: list[str] = []
    names: list[str | None] = []
    # Requests that ran, for refinements and undo: the chat's Conversation,
    # its turns kept on one stand-in photo (the photos themselves are URLs).
    conversation = Conversation()
    photo = conversation.add_image("conversation", "", (1, 1))
    intent: Intent | None = None
    for index, (text, (_, turn_images, turn_names)) in enumerate(
        zip(texts, turns, strict=True)
    ):
        images.extend(turn_images)
        names.extend(_names_for(turn_images, turn_names))
        if len(images) > MAX_IMAGES:
            raise UserInputError(
                f"Send at most {MAX_IMAGES} photos in one conversation."
            )
        if index < first:
            continue  # too old to replay: only its photos count
        if not text:
            intent = None  # a photo without words: asks nothing yet
            continue
        intent = parse_intent(text, previous=conversation.last_intent())
        if runs_model(intent):
            request = conversation.new_request()
            conversation.record(photo.id, intent, ResultSummary(""), request=request)
        elif intent.action == "undo" and conversation.can_undo():
            conversation.undo_request()
    last = conversation.last_intent()
    if intent is None:  # the last message has no words
        if not turns[-1][1]:
            raise UserInputError("The last user message is empty; ask something.")
        # a photo alone: the last request again on it, else a caption
        intent = last or parse_intent("what's in this picture?")
    if intent.action == "undo":
        if last is None:
            raise UserInputError("There is nothing to undo in this conversation.")
        intent = last  # the answer before the undone request, again
    url, number = _choose_image(images, intent)
    name = names[number - 1] if number else None
    return ChatRequest(intent, url, number, len(images), name)


def _names_for(images: list[str], names: list[str]) -> list[str | None]:
    """One name per image of a turn: the listed names when they match in number."""
    return list(names) if len(names) == len(images) else [None] * len(images)
