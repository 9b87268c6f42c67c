"""The OpenAI-compatible door over the real server, driven by the official
``openai`` client: models, a two-turn refinement, streaming, overlay links,
the API key. Runs on the replay model, so boxes and masks are real answers."""

from __future__ import annotations

import base64
import io
import re

import httpx
import openai
import pytest
from PIL import Image

from tests.recorded import REPLAY_RECORDING

pytestmark = pytest.mark.e2e

KEY = "sk-test-openai-door"
# REPLAY_CAT / REPLAY_DOG boxes on a 320x240 photo, in original pixels
CAT_ROW = re.compile(r"\| cat \| 31 \| 23 \| 156 \| 164 \|")
DOG_ROW = re.compile(r"\| dog \| 172 \| 47 \| 297 \| 211 \|")
LINK = re.compile(r"!\[overlay\]\((http://[^)]+)\)")


def data_uri(size=(320, 240), color="orange") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def user(text: str, image: str | None = None) -> dict:
    if image is None:
        return {"role": "user", "content": text}
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": image}},
            {"type": "text", "text": text},
        ],
    }


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="openai-door", API_KEY=KEY)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def test_models_lists_the_alias_and_the_loaded_model(client) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "paligemma"
    assert ids[1].startswith("replay:")


def test_two_turn_refinement_with_an_overlay_link(client) -> None:
    photo = data_uri()
    first = client.chat.completions.create(
        model="paligemma", messages=[user("segment the cat", photo)]
    )
    text = first.choices[0].message.content
    assert first.choices[0].finish_reason == "stop"
    assert "`segment cat`" in text
    assert CAT_ROW.search(text) and not DOG_ROW.search(text), text
    history = [
        user("segment the cat", photo),
        {"role": "assistant", "content": text},
        user("also the dog"),
    ]
    second = client.chat.completions.create(model="paligemma", messages=history)
    answer = second.choices[0].message.content
    assert "`segment cat ; dog`" in answer
    assert CAT_ROW.search(answer) and DOG_ROW.search(answer), answer
    links = LINK.findall(answer)
    assert len(links) == 1, answer
    overlay = httpx.get(links[0], timeout=30)
    assert overlay.status_code == 200
    assert overlay.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(overlay.content)).size == (320, 240)
    forged = re.sub(r"sig=[0-9a-f]+", "sig=" + "0" * 64, links[0])
    refused = httpx.get(forged, timeout=30)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "link_refused"


def test_streaming_gives_the_same_answer_as_one_piece(client) -> None:
    messages = [user("detect cat ; dog", data_uri())]
    whole = client.chat.completions.create(
        model="paligemma", messages=messages, extra_body={"overlay": "none"}
    )
    stream = client.chat.completions.create(
        model="paligemma",
        messages=messages,
        stream=True,
        extra_body={"overlay": "none"},
    )
    chunks = list(stream)
    pieces = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert pieces == whole.choices[0].message.content
    assert "`detect cat ; dog`" in pieces and "![overlay]" not in pieces


def test_data_uri_overlay_when_asked(client) -> None:
    answer = client.chat.completions.create(
        model="paligemma",
        messages=[user("segment the cat", data_uri((200, 100)))],
        extra_body={"overlay": "data_uri"},
    )
    text = answer.choices[0].message.content
    match = re.search(r"!\[overlay\]\(data:image/jpeg;base64,([A-Za-z0-9+/=]+)\)", text)
    assert match, text[:300]
    image = Image.open(io.BytesIO(base64.b64decode(match.group(1))))
    assert image.size == (200, 100)


def test_without_a_photo_the_answer_asks_for_one(client) -> None:
    answer = client.chat.completions.create(
        model="paligemma", messages=[user("segment the cat")]
    )
    assert "Attach a photo first" in answer.choices[0].message.content


@pytest.mark.parametrize(
    ("kwargs", "error", "phrase"),
    [
        ({"model": "gpt-4o"}, openai.NotFoundError, "Unknown model"),
        ({"messages": []}, openai.BadRequestError, "non-empty list"),
        (
            {"messages": [user("detect car", "data:image/png;base64,bm9wZQ==")]},
            openai.APIStatusError,
            "image",
        ),
        ({"extra_body": {"overlay": "gif"}}, openai.BadRequestError, "'overlay'"),
        ({"max_tokens": 2000}, openai.BadRequestError, "MAX_NEW_TOKENS_LIMIT"),
        ({"max_tokens": -5}, openai.BadRequestError, "at least 1"),
    ],
)
def test_bad_requests_get_clear_errors(client, server, kwargs, error, phrase) -> None:
    request = {"model": "paligemma", "messages": [user("detect cat", data_uri())]}
    request.update(kwargs)
    with pytest.raises(error) as caught:
        client.chat.completions.create(**request)
    assert phrase in str(caught.value)
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_the_api_key_applies(server) -> None:
    stranger = openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    with pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(
            model="paligemma", messages=[user("detect cat", data_uri())]
        )
