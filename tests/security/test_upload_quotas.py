"""Attack: chat uploads cost nothing and were kept without bound.

Ten 19 MB uploads went through in 3.5 s; with the chat's rate limit spent,
20 uploads of 36 MP still cost 14.7 s of decoding and 202 MB of disk in one
anonymous session. Now every upload counts toward RATE_LIMIT before it is
decoded, an anonymous session keeps at most UPLOADS_PER_SESSION_MAX photos,
anonymous uploads stop while Chainlit's files folder holds UPLOADS_TOTAL_MB,
each refusal says so and loses nothing (the earlier photos still answer), and
abandoned session folders are swept. Over the real server (replay model).
"""

from __future__ import annotations

import io
import os
import time
import uuid

import numpy as np
import pytest
from PIL import Image

from tests.security.auth_helpers import TabClient, png
from tests.security.conftest import files_root

pytestmark = pytest.mark.e2e

DECODED = "decoded an upload once"  # chat.photos logs each decode


@pytest.fixture(scope="module")
def rate_server(secure_server):
    return secure_server(RATE_LIMIT="3")


@pytest.fixture(scope="module")
def quota_server(secure_server):
    return secure_server(
        RATE_LIMIT="0", UPLOADS_PER_SESSION_MAX="2", UPLOADS_TOTAL_MB="1"
    )


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 * side**2 bytes."""
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def text_of(replies: list[dict]) -> str:
    return "\n".join(reply.get("output", "") for reply in replies)


async def test_each_upload_counts_before_it_is_decoded(rate_server):
    tab = TabClient(rate_server.url, address="192.0.2.61")
    await tab.connect()
    decoded_before = rate_server.log().count(DECODED)
    try:
        photos = [
            (f"{n}.png", png(color))
            for n, color in enumerate(("red", "green", "blue", "black"))
        ]
        said = text_of(await tab.send("", photos))  # 4 uploads, 3 per minute
        assert "Too many requests" in said, said
        assert "Nothing is lost" in said and "Kept from this message" in said
        assert rate_server.log().count(DECODED) - decoded_before == 3  # not the 4th
        folder = files_root(rate_server) / tab.session_id
        stored = [p for p in folder.iterdir() if p.is_file()]
        assert len(stored) == 3, stored  # Chainlit's copy of the refused one: gone
    finally:
        await tab.close()


async def test_a_session_keeps_at_most_its_quota_and_loses_nothing(quota_server):
    tab = TabClient(quota_server.url)
    await tab.connect()
    try:
        got = text_of(await tab.send("", [("a.png", png("red")), ("b.png", png())]))
        assert "Got" in got, got
        refused = text_of(await tab.send("segment the cat", [("c.png", png())]))
        assert "UPLOADS_PER_SESSION_MAX" in refused, refused
        assert "Nothing is lost" in refused
        assert "`segment cat`" not in refused  # the request waits for the user
        again = text_of(await tab.send("segment the cat"))  # the two kept photos
        assert again.count("`segment cat`") == 2, again
    finally:
        await tab.close()
    other = TabClient(quota_server.url)  # a new chat has its own quota
    await other.connect()
    try:
        assert "Got" in text_of(await other.send("", [("d.png", png())]))
    finally:
        await other.close()


async def test_uploads_stop_when_the_files_folder_is_full(quota_server):
    tab = TabClient(quota_server.url)
    await tab.connect()
    try:
        first = text_of(await tab.send("", [("big.png", noise_png(360))]))
        assert "Got" in first, first  # ~0.4 MB, kept twice over with its copies
        refused = text_of(await tab.send("", [("more.png", png())]))
        assert "UPLOADS_TOTAL_MB" in refused, refused
        assert "Nothing is lost" in refused
        kept = text_of(await tab.send("segment the cat"))
        assert "`segment cat`" in kept, kept
    finally:
        await tab.close()


def test_abandoned_session_folders_are_swept(tmp_path):
    from chat.uploads import sweep_abandoned

    hour_ago = time.time() - 3700

    def session(age_s: float | None = None, name: str | None = None):
        folder = tmp_path / (name or str(uuid.uuid4()))
        (folder / "images").mkdir(parents=True)
        (folder / "images" / "001.orig").write_bytes(b"x" * 1000)
        if age_s is not None:
            for path in (folder / "images" / "001.orig", folder / "images", folder):
                os.utime(path, (hour_ago, hour_ago))
        return folder

    abandoned, live, recent = session(3700), session(3700), session()
    odd = session(3700, name="not-a-session")
    removed = sweep_abandoned(tmp_path, lambda sid: sid == live.name, 3600)
    assert removed == [abandoned]
    assert not abandoned.exists()
    assert live.exists() and recent.exists() and odd.exists()
