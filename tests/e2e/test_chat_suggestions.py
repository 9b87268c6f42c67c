"""Follow-up suggestions under a chat answer, over the real server (issue 24):
the buttons under a grounded answer, and one click running its phrase as if
typed (shown as the user's message, then answered on the same photo)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="suggestions")


async def test_a_suggestion_click_runs_its_phrase(server) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        replies = await client.send("segment the cat", [("cat.png", png_bytes())])
        answer = replies[-1]
        assert "`segment cat`" in answer["output"]
        buttons = client.suggestions_for(answer["id"])
        labels = [button["label"] for button in buttons]
        assert labels[0] == "now as boxes", labels
        assert "zoom into the top left" in labels
        assert all(b["payload"] == {"phrase": b["label"]} for b in buttons)

        replies = await client.click_for_replies(buttons[0])
        users = [m for m in client.messages if m.get("type") == "user_message"]
        assert users[-1]["output"] == "now as boxes"  # shown as the user's words
        assert "`detect cat`" in replies[-1]["output"], server.log()[-2000:]
        assert "cat.png" in replies[-1]["output"]
        assert client.suggestions_for(replies[-1]["id"])  # new suggestions under it
    finally:
        await client.close()
