"""The chat's reply text for one analysis. Pure."""

from __future__ import annotations

import re
from collections.abc import Collection

from core.intent.region import region_to_pixels
from core.intent.vocab import IRREGULAR_PLURALS
from core.render import box_table_markdown
from core.security.markdown import escape_markdown, inline_code
from core.types import GROUNDED_TASKS, AnalysisResult


def reply_markdown(
    result: AnalysisResult, image_name: str, hidden: Collection[int] = ()
) -> str:
    """Markdown: what ran on which image, the box list or the text answer.

    ``hidden``: 1-based numbers of objects the user hid; their rows are left
    out and a line says how to bring them back.
    """
    width, height = result.image_size_wh
    intent = result.intent
    where = ""
    if intent.region is not None:
        x1, y1, x2, y2 = region_to_pixels(intent.region, (width, height))
        where = f", in the region {x1},{y1} to {x2},{y2}"
    name = escape_markdown(image_name)
    prompt = inline_code(intent.prompt)
    lines = [f"**{prompt}** on *{name}* ({width}x{height}){where}", ""]
    if result.caption is not None:  # "detect everything": the caption first
        lines += [numbered_caption(result), ""]
    if intent.task in GROUNDED_TASKS:
        if result.detections:
            table = box_table_markdown(
                result.detections, hidden, result.object_captions
            )
            lines.append(table)
            if shown_hidden := sorted(n for n in hidden if n <= len(result.detections)):
                numbers = ", ".join(str(n) for n in shown_hidden)
                lines += ["", f"Hidden: {numbers}. Say *show all* to bring them back."]
        else:
            what = escape_markdown(" or ".join(intent.targets) or "anything")
            lines.append(
                f"No {what} found. Try another word for it, or ask "
                '"what\'s in this picture?" to see what the model recognises.'
            )
    elif result.caption is None or result.answer != result.caption:
        lines.append(
            escape_markdown(result.answer)
            if result.answer
            else "(the model gave an empty answer)"
        )
    if result.detections_dropped:
        lines += [
            "",
            f"⚠️ {result.detections_dropped} more object(s) were found but not "
            f"kept: at most {len(result.detections)} per image (MAX_DETECTIONS). "
            "Ask for fewer things at once.",
        ]
    if result.truncated:
        missing = (
            "some objects may be missing"
            if intent.task in GROUNDED_TASKS
            else "the answer may be incomplete"
        )
        lines += [
            "",
            f"⚠️ The answer was cut at {result.max_new_tokens} new tokens, so "
            f"{missing}. Raise *Max new tokens* in the settings or ask for "
            "fewer things at once.",
        ]
    return "\n".join(lines)


def numbered_caption(result: AnalysisResult) -> str:
    """The caption whose names were detected, each name followed by the
    numbers of its boxes as the table and overlay number them: "a dog [1]
    and a cat [2, 3]". Escaped (it is the model's text)."""
    caption = escape_markdown(result.caption or "")
    if result.intent.task not in GROUNDED_TASKS:
        return f"Caption: {caption}"
    numbers: dict[str, list[int]] = {}
    for index, detection in enumerate(result.detections, start=1):
        numbers.setdefault((detection.label or "").lower(), []).append(index)
    for name in result.intent.targets:
        found = numbers.get(name.lower())
        mark = ", ".join(map(str, found)) if found else "not found"
        caption = _after_name(caption, name, f"[{mark}]")
    return f"Caption: {caption}"


def _after_name(caption: str, name: str, mark: str) -> str:
    """``caption`` with ``mark`` after the first mention of ``name`` (or its
    plural); appended when the caption words it otherwise."""
    forms = [name, *(p for p, s in IRREGULAR_PLURALS.items() if s == name)]
    words = "|".join(re.escape(form) for form in forms)
    pattern = re.compile(rf"\b(?:{words})(?:e?s)?\b", re.IGNORECASE)
    found = pattern.search(caption)
    if found is None:
        return f"{caption} {name} {mark}"
    return f"{caption[: found.end()]} {mark}{caption[found.end() :]}"
