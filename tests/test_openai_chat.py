"""api.openai_chat: an OpenAI-style conversation -> the request to run."""

from __future__ import annotations

import pytest

from api.openai_chat import MAX_IMAGES, parse_chat
from core.errors import UserInputError

IMG_A = "data:image/png;base64,AAAA"
IMG_B = "data:image/png;base64,BBBB"


def user(text: str | None = None, *images: str) -> dict:
    if not images:
        return {"role": "user", "content": text}
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    if text is not None:
        parts.append({"type": "text", "text": text})
    return {"role": "user", "content": parts}


def assistant(text: str = "ok") -> dict:
    return {"role": "assistant", "content": text}


@pytest.mark.parametrize(
    ("messages", "prompt", "image", "number"),
    [
        ([user("segment the cat", IMG_A)], "segment cat", IMG_A, 1),  # one turn
        (
            [user("segment the cat", IMG_A), assistant(), user("also the dog")],
            "segment cat ; dog",
            IMG_A,
            1,
        ),  # refinement from the history
        (
            [
                user("segment the cat", IMG_A),
                assistant(),
                user("also the dog"),
                assistant(),
                user("undo"),
            ],
            "segment cat",
            IMG_A,
            1,
        ),  # undo: the request before, again
        (
            [user("detect car", IMG_A), assistant(), user("detect car", IMG_B)],
            "detect car",
            IMG_B,
            2,
        ),  # the newest photo
        (
            [
                user("detect car", IMG_A),
                assistant(),
                user(None, IMG_B),
                assistant(),
                user("same for the first photo"),
            ],
            "detect car",
            IMG_A,
            1,
        ),  # a photo by number
        (
            [user("segment the cat", IMG_A), assistant(), user(None, IMG_B)],
            "segment cat",
            IMG_B,
            2,
        ),  # a photo alone: the last request on it
        ([user(None, IMG_A)], "caption en", IMG_A, 1),  # a first photo alone
        (
            [{"role": "system", "content": "be brief"}, user("detect dog", IMG_A)],
            "detect dog",
            IMG_A,
            1,
        ),  # a system prompt is ignored
    ],
)
def test_the_last_request_runs_on_its_photo(messages, prompt, image, number) -> None:
    request = parse_chat(messages, 500)
    assert (request.intent.prompt, request.image_url, request.image_number) == (
        prompt,
        image,
        number,
    )


def test_text_without_a_photo_has_no_image() -> None:
    request = parse_chat([user("segment the cat")], 500)
    assert (request.intent.action, request.image_url) == ("run", None)


def test_help_does_not_run_the_model() -> None:
    request = parse_chat([user("help", IMG_A)], 500)
    assert request.intent.action == "help"
    assert request.intent.message


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (None, "non-empty list"),  # missing
        ([], "non-empty list"),  # empty
        ("segment cat", "non-empty list"),  # not a list
        ([assistant()], "no user message"),  # nobody asked
        (["hi"], r"messages\[0\] must be an object"),  # not an object
        ([{"role": "wizard", "content": "x"}], r"messages\[0\]\.role"),  # bad role
        ([{"role": "user", "content": 5}], "string or a list of parts"),
        ([{"role": "user", "content": [5]}], r"content\[0\] must be an object"),
        (
            [{"role": "user", "content": [{"type": "audio"}]}],
            "'text' or 'image_url'",
        ),  # unknown part
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            "url must be a string",
        ),  # image without URL
        ([user("x" * 501, IMG_A)], "MAX_PROMPT_CHARS"),  # too long
        ([user("")], "empty"),  # nothing asked
        ([user("undo", IMG_A)], "nothing to undo"),
        ([user("detect car on image 3", IMG_A)], "no image 3"),
        ([user("detect car", *[IMG_A] * (MAX_IMAGES + 1))], "at most"),
        ([user("hi")] * 201, "at most 200 messages"),
    ],
)
def test_bad_conversations_get_a_clear_400(messages, message) -> None:
    with pytest.raises(UserInputError, match=message):
        parse_chat(messages, 500)
