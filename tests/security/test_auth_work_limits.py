"""Rate limits that count work, over the real server (loopback, no login):
a new session id does not reset the chat's limit, every image, upload, undo,
export and download click counts, every /v1/analyze image counts, and chat
settings from the socket are clamped to their widgets. Client addresses are sent as
X-Forwarded-For (trusted from 127.0.0.1 only, FORWARDED_ALLOW_IPS)."""

from __future__ import annotations

import httpx
import pytest

from tests.security.auth_helpers import TabClient, png, replay_server

pytestmark = pytest.mark.e2e

LIMIT = 5
LIMITED = "Too many requests"


@pytest.fixture(scope="module")
def server(synthetic_vae_path, tmp_path_factory):
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "auth-work-limits",
        RATE_LIMIT=str(LIMIT),
        FORWARDED_ALLOW_IPS="127.0.0.1",
    ) as process:
        yield process


async def test_a_new_session_id_does_not_reset_the_chat_limit(server):
    first = TabClient(server.url, address="192.0.2.1")
    await first.connect()
    try:
        await first.send("", [("a.png", png("red")), ("b.png", png("blue"))])  # 2
        replies = await first.send("segment the cat in all images")  # 2 more: 4
        assert sum("`segment cat`" in r["output"] for r in replies) == 2, replies
    finally:
        await first.close()
    second = TabClient(server.url, address="192.0.2.1")  # same address, new id
    await second.connect()
    try:
        # the upload is the 5th of 5; its request would be the 6th
        refused = await second.send("segment the cat", [("c.png", png())])
        assert LIMITED in refused[-1]["output"], second.outputs()
        assert "`segment cat`" not in "".join(second.outputs())
    finally:
        await second.close()


async def test_undo_and_export_count(server):
    tab = TabClient(server.url, address="192.0.2.2")
    await tab.connect()
    try:
        await tab.send("segment the cat", [("c.png", png())])  # 2: upload, run
        assert "`segment cat ; dog`" in (await tab.send("also the dog"))[-1]["output"]
        assert "Undone" in (await tab.send("undo"))[0]["output"]  # 4
        exported = await tab.send("export")  # 5
        assert "Exports of 1 image" in exported[-1]["output"], tab.outputs()
        refused = await tab.send("segment the cat")
        assert LIMITED in refused[-1]["output"], tab.outputs()
    finally:
        await tab.close()


async def test_download_clicks_count(server):
    """Each click replays the answer (its masks decoded again): one unit of
    work, so clicking the buttons cannot bypass the limit."""
    tab = TabClient(server.url, address="192.0.2.4")
    await tab.connect()
    try:
        (answer,) = await tab.send("segment the cat", [("c.png", png())])  # 2
        buttons = list(tab.downloads_for(answer["id"]))
        for button in buttons[:3]:  # 3, 4, 5
            await tab.download_file(answer["id"], button["label"])
        before = len(tab.assistant_messages())
        await tab.click(buttons[3])  # the 6th unit of work
        await tab.wait_for(lambda: len(tab.assistant_messages()) > before)
        assert LIMITED in tab.assistant_messages()[-1]["output"], tab.outputs()
        files = [e for e in tab.elements_for(answer["id"]) if e["type"] == "file"]
        assert len(files) == 3  # nothing built for the refused click
    finally:
        await tab.close()


async def test_chat_settings_from_the_socket_are_clamped(server):
    tab = TabClient(server.url, address="192.0.2.3")
    await tab.connect()
    try:
        hostile = {
            "max_new_tokens": 10**9,
            "decoding": "no such preset",
            "opacity": 50,
            "show_boxes": "no",
        }
        ended = tab.tasks_ended
        await tab.sio.emit("chat_settings_change", hostile)
        await tab.wait_for(lambda: tab.tasks_ended > ended)  # handler finished
        # 1024 tokens at most (the slider's top): 4, and the upload 1, of 5
        replies = await tab.send("segment the cat", [("c.png", png())])
        assert "`segment cat`" in replies[-1]["output"], tab.outputs()
        assert not any("⚠️" in text for text in tab.outputs()), tab.outputs()
    finally:
        await tab.close()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def _analyze(server, images: int) -> httpx.Response:
    files = [("images", (f"{n}.png", png(), "image/png")) for n in range(images)]
    return httpx.post(
        f"{server.url}/v1/analyze",
        data={"prompt": "segment cat"},
        files=files,
        timeout=120,
    )


def test_every_v1_analyze_image_counts(server):
    too_many = _analyze(server, LIMIT + 1)
    assert too_many.status_code == 429, too_many.text
    assert "fewer images" in too_many.json()["error"]["message"]
    # the refused request still took its first hit: 1 + (1 + 3) = 5 of 5
    assert _analyze(server, LIMIT - 1).status_code == 200
    refused = httpx.post(
        f"{server.url}/segment",
        data={"prompt": "segment cat"},
        files={"image_file": ("c.png", png(), "image/png")},
    )
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
