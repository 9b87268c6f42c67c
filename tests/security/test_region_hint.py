"""Attack: a file name (or request) that is markdown, shown by "draw a region".

The hint above the photo named the upload as ``*{name}*`` and the last request
as ``\\`{prompt}\\```: a photo named ``![b](https://evil.example/b.png).png``
loaded a beacon the moment the hint showed, a name with ``[x](url)`` became a
link. Rendered as in tests/security/test_markdown.py (CommonMark plus
remark-gfm's bare-address patterns).
"""

from __future__ import annotations

import pytest

from chat.region import region_hint
from core.security.markdown import JOINER
from tests.security.conftest import assert_alive
from tests.security.test_markdown import HOSTILE, MARKDOWN, assert_inert, png
from tests.support.chat_client import ChatClient

BEACON_NAME = "![b](https://evil.example/b.png).png"


@pytest.mark.parametrize("name", [BEACON_NAME, *HOSTILE])
@pytest.mark.parametrize("prompt", [None, "segment cat"])
def test_a_hostile_file_name_is_inert(name, prompt):
    assert_inert(region_hint(name, prompt))


@pytest.mark.parametrize("prompt", HOSTILE)
def test_a_hostile_request_is_inert(prompt):
    assert_inert(region_hint("photo.png", prompt))


def test_the_name_still_reads_the_same():
    html = MARKDOWN.render(region_hint(BEACON_NAME, "detect cat ; dog"))
    assert f"<em>{BEACON_NAME.replace('://', ':' + JOINER + '//')}</em>" in html
    assert "<code>detect cat ; dog</code>" in html


@pytest.mark.e2e
async def test_draw_a_region_on_a_photo_named_like_markdown(secure_server):
    server = secure_server()
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.send("segment the cat", [(BEACON_NAME, png())])
        replies = await client.send("draw a region")
        hints = [r["output"] for r in replies if "Drag a rectangle" in r["output"]]
        assert hints, [r["output"] for r in replies]
        for hint in hints:
            assert_inert(hint)
        assert "evil.example/b.png).png" in MARKDOWN.render(hints[0])  # still named
    finally:
        await client.close()
    assert_alive(server)
