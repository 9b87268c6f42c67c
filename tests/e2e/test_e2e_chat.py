"""The real Chainlit server, driven over its socket like the web page does."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from core.security import escape_markdown
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e


def png_bytes(size=(96, 64), color=(200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tiny_server(app_server):
    return app_server(name="chat-tiny")


async def test_segment_cat_on_the_tiny_model_answers_with_an_overlay(tiny_server):
    client = ChatClient(tiny_server.url)
    await client.connect()
    try:
        replies = await client.send("segment cat", [("cat.png", png_bytes())])
        assert replies, f"no assistant message; log:\n{tiny_server.log()[-3000:]}"
        answer = replies[-1]
        assert "`segment cat`" in answer["output"]
        assert "cat.png" in answer["output"]
        images = [e for e in client.elements_for(answer["id"]) if e["type"] == "image"]
        assert len(images) == 1
        generating = [s for s in client.messages if s.get("name") == "generating"]
        assert generating and generating[-1]["input"] == "segment cat"
    finally:
        await client.close()


async def test_text_without_an_image_asks_for_one(tiny_server):
    client = ChatClient(tiny_server.url)
    await client.connect()
    try:
        (reply,) = await client.send("segment cat")
        assert "Attach a photo" in reply["output"]
    finally:
        await client.close()


async def test_broken_upload_gets_a_clear_message_and_the_server_lives(tiny_server):
    client = ChatClient(tiny_server.url)
    await client.connect()
    try:
        replies = await client.send(
            "detect cat", [("fake.png", b"hello, not an image")]
        )
        text = " ".join(r["output"] for r in replies)
        assert "fake.png" in text and "not an image" in text
        assert "Attach a photo" in text  # nothing usable was kept
        assert httpx.get(f"{tiny_server.url}/health").status_code == 200
    finally:
        await client.close()


async def test_text_answers_stream_then_complete(tiny_server):
    client = ChatClient(tiny_server.url)
    await client.connect()
    try:
        replies = await client.send("caption en", [("cat.png", png_bytes())])
        answer = replies[-1]
        assert "`caption en`" in answer["output"]
        pieces = client.streams.get(answer["id"])
        assert pieces, "the answer was not streamed"
        steps = client.messages + client.steps
        raw = [s["output"] for s in steps if s.get("name") == "generating"]
        # The stream is shown inert (escaped); the step keeps the exact text.
        assert "".join(pieces).strip() == escape_markdown(raw[-1]).strip()
        assert client.elements_for(answer["id"]) == []  # text tasks: no overlay
    finally:
        await client.close()
