"""The chat's reply text for one analysis. Pure."""

from __future__ import annotations

from collections.abc import Collection

from core.intent.region import region_to_pixels
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
    if intent.task in GROUNDED_TASKS:
        if result.detections:
            lines.append(box_table_markdown(result.detections, hidden))
            if shown_hidden := sorted(n for n in hidden if n <= len(result.detections)):
                numbers = ", ".join(str(n) for n in shown_hidden)
                lines += ["", f"Hidden: {numbers}. Say *show all* to bring them back."]
        else:
            what = escape_markdown(" or ".join(intent.targets) or "anything")
            lines.append(
                f"No {what} found. Try another word for it, or ask "
                '"what\'s in this picture?" to see what the model recognises.'
            )
    else:
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
