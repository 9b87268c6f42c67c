"""Attack: clips past VIDEO_MAX_MB, and files dressed up as clips.

With MAX_UPLOAD_MB=2 and VIDEO_MAX_MB=1, a 1.5 MB "clip" passes the body
limit (the larger of the two) but is refused by name of the setting in the
chat and in /v1/analyze, nothing of it decoded; a body past both limits is a
413 at /project/file; a file with a clip's name and type but no video inside
is refused as "not a video", never handed to the model.
"""

from __future__ import annotations

import httpx
import pytest

from tests.security.conftest import assert_alive
from tests.support.chat_client import ChatClient
from web.bodylimit import MB

pytestmark = pytest.mark.e2e

HEADER = b"\0\0\0\x18ftypisom\0\0\0\0isomiso2"  # an MP4's first box


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server(MAX_UPLOAD_MB="2", VIDEO_MAX_MB="1", RATE_LIMIT="0")


def fake_clip(size: int) -> bytes:
    return HEADER + b"\0" * (size - len(HEADER))


async def test_chat_refuses_a_clip_over_video_max_mb(server) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        big = await client.send("", [("big.mp4", fake_clip(3 * MB // 2), "video/mp4")])
        junk = await client.send("", [("junk.mp4", fake_clip(4096), "video/mp4")])
    finally:
        await client.close()
    assert "VIDEO_MAX_MB" in big[-1]["output"], big
    assert "not a video" in junk[-1]["output"], junk
    assert "decoded an upload" not in server.log()  # never taken for a photo
    assert_alive(server)


async def test_upload_past_both_limits_is_413(server) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            response = await http.post(
                "/project/file",
                params={"session_id": client.session_id},
                files={"file": ("huge.mp4", fake_clip(3 * MB), "video/mp4")},
            )
    finally:
        await client.close()
    assert response.status_code == 413


async def test_rest_refuses_a_clip_over_video_max_mb(server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        response = await http.post(
            "/v1/analyze",
            data={"prompt": "track the square"},
            files={"images": ("big.mp4", fake_clip(3 * MB // 2), "video/mp4")},
        )
    assert response.status_code == 400
    assert "VIDEO_MAX_MB" in response.json()["error"]["message"]
