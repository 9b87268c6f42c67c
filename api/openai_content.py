"""What chat UIs add to a user's text, taken out before the intent parser. Pure.

Open WebUI (0.12) sends a photo as three content parts: a text part
``<attached_files>\\n<file type="file" id=".." url=".." content_type="image/jpeg"
name="squares.jpg"/>\\n</attached_files>\\n\\n``, the typed text, then the
``image_url`` part. With documents or web search it also prepends its RAG
template (``### Task:\\nRespond to the user query using the provided
context ... <context><source id="1" name="..">...</source></context>``),
sometimes with the typed text inside ``<user_query>``. Only the typed words
may reach ``core.intent.parse_intent``: "detect" inside a file name or a
retrieved page must not become a request.
"""

from __future__ import annotations

import html
import logging
import re

logger = logging.getLogger(__name__)

FILE_TAG = re.compile(r"<file\b([^<>]*)>", re.IGNORECASE)  # [^<>]: linear
ATTRIBUTE = re.compile(r'\b(\w+)="([^"]*)"')  # \b: one try per word
RAG_START = "### task:"
RAG_TASK = "respond to the user query using the provided context"
# (opening, closing) tags of the blocks that are never typed words; found with
# str.find, one pass each (a regex with .*? is quadratic on unclosed tags)
BLOCKS = (
    ("<attached_files>", "</attached_files>"),
    ("<context>", "</context>"),
    ("<source", "</source>"),
)


def _drop(text: str, opening: str, closing: str) -> str:
    """``text`` without each ``opening ... closing`` block (an unclosed one
    runs to the end; ``<source .../>`` closes itself)."""
    low, kept, at = text.lower(), [], 0
    while (start := low.find(opening, at)) != -1:
        kept.append(text[at:start])
        tag_end = low.find(">", start)
        if tag_end != -1 and low[tag_end - 1] == "/":  # <source id="1"/>
            at = tag_end + 1
            continue
        end = low.find(closing, start)
        at = len(text) if end == -1 else end + len(closing)
    kept.append(text[at:])
    return "".join(kept)


def _between(text: str, opening: str, closing: str) -> str | None:
    low = text.lower()
    start = low.find(opening)
    end = low.find(closing, start + 1) if start != -1 else -1
    return text[start + len(opening) : end] if end != -1 else None


def _drop_rag_task(text: str) -> str:
    """Open WebUI's RAG instructions (``### Task: Respond to the user query
    using the provided context ...``), up to its ``</context>``."""
    low = text.lower()
    start = low.find(RAG_START)
    if start == -1 or RAG_TASK not in low[start : start + 120]:
        return text
    end = low.find("</context>", start)
    return text[:start] + ("" if end == -1 else text[end + len("</context>") :])


def typed_text(text: str) -> str:
    """``text`` without attachment lists, retrieved context and RAG
    instructions: what the person typed (may be empty)."""
    if (query := _between(text, "<user_query>", "</user_query>")) is not None:
        return query.strip()
    cleaned = _drop_rag_task(text)
    for opening, closing in BLOCKS:
        cleaned = _drop(cleaned, opening, closing)
    if cleaned != text:
        logger.debug("dropped %d characters of attachments", len(text) - len(cleaned))
    return cleaned.strip()


def attached_image_names(text: str) -> list[str]:
    """The names of the images an ``<attached_files>`` list names, in order."""
    names = []
    block = _between(text, "<attached_files>", "</attached_files>") or ""
    for tag in FILE_TAG.finditer(block):
        attributes = dict(ATTRIBUTE.findall(tag.group(1)))
        kind = attributes.get("content_type", "")
        if kind.startswith("image/") and attributes.get("name"):
            names.append(html.unescape(attributes["name"]))
    return names
