"""Composed requests in chat text: "detect everything", "describe each object".

PaliGemma needs names to detect, so "everything" is a caption first whose
names are then detected (or segmented), and "a caption per object" captions
the crop of each object found (core.service.compose runs both). Pure.
"""

from __future__ import annotations

import re
from dataclasses import replace

from core.intent import text as t
from core.intent.refine import clarify, grounded_prev
from core.types import Intent

_MASKY = r"segment|mask|outline|cut\s+out"
_ALL = (
    r"(?:all\s+(?:of\s+)?(?:the\s+)?(?:objects?|things|items|stuff)|everything|"
    r"every\s+(?:object|thing|item)|each\s+(?:object|thing|item)|all)"
)
_PHOTO = r"(?:\s+(?:in|on|of)\s+(?:this|the)\s+(?:image|photo|picture|pic|scene))?"
# "detect everything", "label all the objects in this photo", "segment everything"
EVERYTHING = re.compile(
    rf"^(?P<verb>detect|find|locate|label|box|name|identify|{_MASKY})"
    rf"\s+{_ALL}{_PHOTO}(?:\s+as\s+(?P<as>masks|boxes))?$"
)
# "what is in this photo and where?", "what objects are in this photo and where"
WHAT_AND_WHERE = re.compile(
    r"^what(?:'s|\s+is|s|\s+(?:objects|things)\s+are|\s+are\s+the\s+(?:objects|things))"
    rf"{_PHOTO}\s+and\s+where(?:\s+(?:are\s+they|is\s+it))?$"
)
# "describe each object", "caption every box", "caption each dog"
EACH = re.compile(
    r"^(?:describe|caption|give\s+(?:me\s+)?a\s+caption\s+(?:for|of))\s+"
    r"(?:each|every|all)\s+(?:of\s+)?(?:the\s+)?(?P<what>.+?)"
    r"(?:\s+(?:separately|one\s+by\s+one|individually))?$"
)
_ANY_OBJECT = re.compile(
    r"^(?:objects?|box(?:es)?|things?|items?|detections?|ones?|them|of\s+them)$"
)
MSG_EACH_WHAT = (
    "Which objects? Detect something first (e.g. “detect everything” or "
    "“detect dog ; cat”), then say “describe each object”, or say "
    "“caption each dog”."
)


def composed_intent(low: str, prev: Intent | None) -> Intent | None:
    """The composed request ``low`` (lowercase, polite words stripped) asks
    for, a question back, or None when it asks for none."""
    if m := EVERYTHING.match(low):
        masks = re.match(_MASKY, m["verb"]) or m["as"] == "masks"
        return everything_intent(
            "segment" if masks and m["as"] != "boxes" else "detect"
        )
    if WHAT_AND_WHERE.match(low):
        return everything_intent("detect")
    if m := EACH.match(low):
        return _each(m["what"], prev)
    return None


def everything_intent(task: str = "detect") -> Intent:
    """Caption first, then ``task`` on the things the caption names."""
    return replace(t.run_intent("caption"), then=task)


def _each(what: str, prev: Intent | None) -> Intent:
    if _ANY_OBJECT.match(what):
        if prev is not None and grounded_prev(prev):
            plain = replace(prev, then=None, per_object=None)
            return replace(
                plain, per_object="caption", follows_previous=True, refinement="repeat"
            )
        return replace(everything_intent("detect"), per_object="caption")
    targets = t.split_targets(what)
    if not targets:
        return clarify(MSG_EACH_WHAT)
    return replace(t.run_intent("detect", targets), per_object="caption")
