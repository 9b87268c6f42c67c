"""Attack: markdown injection through model text, upload names and labels.

Chainlit renders messages with react-markdown + remark-gfm: ``![](url)`` would
load a beacon from any server as soon as the reply shows, links would be
clickable. Checked with CommonMark (markdown-it) for images, links and HTML,
plus the exact patterns remark-gfm uses for bare addresses (copied from
Chainlit 2.12's frontend bundle).
"""

from __future__ import annotations

import io
import re

import pytest
from markdown_it import MarkdownIt
from PIL import Image

from core.render import box_table_markdown
from core.security.markdown import code_block_safe, escape_markdown, inline_code
from core.types import Detection
from tests.security.conftest import assert_alive
from tests.support.chat_client import ChatClient

# remark-gfm's autolink literals (mdast-util-gfm-autolink-literal), as bundled.
GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.I | re.A)
GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.A)
MARKDOWN = MarkdownIt("commonmark").enable("table")

HOSTILE = [
    "![beacon](http://127.0.0.1:9/b.png)",  # case: image beacon
    "[click](https://evil.example/phish)",  # case: inline link
    "[click][r]\n\n[r]: https://evil.example",  # case: reference link
    "<https://evil.example/auto>",  # case: angle autolink
    "see https://evil.example/x now",  # case: bare URL (GFM)
    "WWW.evil.example",  # case: bare www (GFM)
    "mail me@evil.example",  # case: bare e-mail (GFM)
    '<img src="http://evil.example/x.png">',  # case: raw HTML
    "a | b | c\n---|---|---\n![x](http://e.example/i.png)|2|3",  # case: table
    "`code` ![x](http://e.example/i.png) `",  # case: code span breakout
]


def as_code_block(text: str, language: str) -> str:
    """What Chainlit 2.12's frontend renders for a step with a ``language``
    (KOe in its bundle): the text in a fence, unless it starts with one."""
    text = text.strip()
    return text if text.startswith("```") else f"```{language}\n{text}\n```"


def displayed(step: dict) -> list[str]:
    """The markdown the frontend renders for a message or step."""
    shown = []
    output, input_ = step.get("output") or "", step.get("input") or ""
    language = step.get("language")
    shown.append(as_code_block(output, language) if language and output else output)
    show_input = step.get("showInput")
    if input_ and show_input:
        is_code = isinstance(show_input, str)
        shown.append(as_code_block(input_, show_input) if is_code else input_)
    return shown


def assert_inert(markdown: str) -> None:
    """Rendered, ``markdown`` has no image, no link, no HTML and no bare
    address that remark-gfm would turn into a link."""
    html = MARKDOWN.render(markdown)
    assert "<img" not in html and "<a " not in html, html
    # remark-gfm looks for bare addresses in text, not inside code spans.
    text = re.sub(
        r"<[^>]+>", "", re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S)
    )
    assert not GFM_URL.search(text), text
    assert not GFM_EMAIL.search(text), text


@pytest.mark.parametrize("hostile", HOSTILE)
def test_escaped_text_is_inert(hostile):
    assert_inert(escape_markdown(hostile))
    assert_inert(inline_code(hostile))
    assert_inert(as_code_block(code_block_safe(hostile), "text"))
    pieces = [escape_markdown(hostile[i : i + 3]) for i in range(0, len(hostile), 3)]
    assert "<img" not in MARKDOWN.render("".join(pieces))  # streamed piecewise


@pytest.mark.parametrize("hostile", HOSTILE)
def test_unescaped_text_is_not(hostile):
    """The checks above can fail: the same text raw is an image, link or HTML."""
    with pytest.raises(AssertionError):
        assert_inert(hostile)


def test_a_fence_in_model_text_cannot_close_the_steps_code_block():
    hostile = "ok\n```\n![x](http://e.example/i.png)"
    with pytest.raises(AssertionError):
        assert_inert(as_code_block(hostile, "text"))
    assert_inert(as_code_block(code_block_safe(hostile), "text"))


def test_code_blocks_keep_the_exact_text():
    raw = "<loc0100><loc0200><loc0300><loc0400> cat ; `x` ![y](z)"
    assert code_block_safe(raw) == raw  # nothing to change: shown exactly
    html = MARKDOWN.render(as_code_block(raw, "text"))
    assert "&lt;loc0100&gt;" in html and "<img" not in html


def test_escaped_text_still_reads_the_same():
    text = "pets.jpg: 3 cats (50%) — see www.example.org"
    shown = re.sub(r"<[^>]+>", "", MARKDOWN.render(escape_markdown(text)))
    assert shown.strip().replace("\u2060", "") == text


def test_labels_in_the_box_table_are_inert():
    hostile = "cat ![x](http://evil.example/b.png) | [y](http://evil.example)"
    table = box_table_markdown([Detection(hostile, (1, 2, 30, 40), None)])
    assert_inert(table)
    assert MARKDOWN.render(table).count("<tr>") == 2  # header + one row: no split


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.e2e
async def test_model_text_and_file_names_reach_the_chat_inert(secure_server):
    """The replay model answers the caption with a beacon, links and addresses;
    the upload's name is a markdown link. Reply, streamed text and the
    'generating' step must all be inert."""
    server = secure_server()
    client = ChatClient(server.url)
    await client.connect()
    try:
        name = "[win](http://evil.example)![b](http://127.0.0.1:9/n.png).png"
        replies = await client.send("caption this", [(name, png())])
        assert replies, server.log()[-3000:]
        shown = ["".join(pieces) for pieces in client.streams.values()]
        for step in client.messages + client.steps:
            shown += displayed(step)
        assert any("beacon" in text for text in shown)  # the answer did arrive
        for text in shown:
            assert_inert(text)
        (ocr,) = await client.send("read the text")
        assert_inert(ocr["output"])
        assert "&lt;img" in MARKDOWN.render(ocr["output"])  # shown, as text
        # The user's own words come back in clarifications and errors.
        for text in (
            "[x](https://evil.example) ![b](http://127.0.0.1:9/c.png)",
            "answer en what is ![b](http://127.0.0.1:9/q.png)?",
        ):
            replies = await client.send(text)
            assert replies
            for reply in replies:
                assert_inert(reply["output"])
    finally:
        await client.close()
    assert_alive(server)
