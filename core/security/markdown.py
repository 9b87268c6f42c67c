"""Show text from outside (model output, file names, labels, user text) inert.

Chainlit renders messages with react-markdown + remark-gfm: ``![](url)`` loads
an image from any server (a beacon that leaks the visitor's address), ``[x](url)``
and bare ``https://...`` / ``www.`` / ``a@b.c`` become clickable links. GFM turns
bare addresses into links *after* parsing, so backslash escapes alone do not
stop it: an invisible WORD JOINER (U+2060) breaks ``://``, ``www.`` and
``name@host``. The text still reads the same.
"""

from __future__ import annotations

import re

JOINER = "\u2060"  # invisible, no line break: breaks GFM's autolink patterns
# Characters that build links, images, HTML, code, bold, headings and tables
# ("_" stays: setting names like MAX_UPLOAD_MB read better, and "_" only styles).
_TABLE = {ord(c): "\\" + c for c in "\\`*[]()<>|!~#"}
# What remark-gfm turns into links after parsing (its own patterns, broken by
# a JOINER): scheme://, www., name@host.
_AUTOLINKS = re.compile(
    r"(?i)(?<=[a-z]:)(?=//)|(?<=\bwww)(?=\.)|(?<=[-.\w+]@)(?=[-\w])"
)


def escape_markdown(text: str) -> str:
    """``text`` as literal markdown: link, image, HTML and emphasis marks
    backslash-escaped and bare addresses unlinked; dots, colons and the words
    themselves unchanged. Safe piece by piece for images (streamed tokens): a
    bare address split across pieces is linked only until the full reply."""
    return _AUTOLINKS.sub(JOINER, str(text)).translate(_TABLE)


def inline_code(text: str) -> str:
    """``text`` as a code span (inert: no links, images or emphasis), one line."""
    flat = " ".join(str(text).split())
    longest = run = 0
    for char in flat:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


_FENCE_LINE = re.compile(r"(?m)^( {0,3})(?=```)")


def code_block_safe(text: str) -> str:
    """``text`` for a step shown as a code block (Chainlit wraps a step's output
    in a ```` ``` ```` fence when it has a ``language``, and its input when
    ``show_input`` names one): exact, except that a line starting with ```` ``` ````,
    which would close the fence (or stop the wrapping), gets a JOINER first."""
    return _FENCE_LINE.sub(lambda m: m.group(1) + JOINER, str(text))
