"""What a person could say next, a title and tags for a request. Pure.

Every suggestion is a phrase the chat understands as a refinement of the
request that just ran (``core.intent.parse_intent(phrase, previous=intent)``
never asks back): the chat shows them as one-click buttons under an answer,
the OpenAI door answers a chat UI's follow-up task with them.
"""

from __future__ import annotations

import logging

from core.types import GROUNDED_TASKS, Intent

logger = logging.getLogger(__name__)

MAX_FOLLOW_UPS = 5
# Things often found beside a target: "also the ..." suggests the first one
# the request does not have yet.
COMPANIONS = {
    "dog": "leash",
    "cat": "sofa",
    "car": "wheel",
    "wheel": "car",
    "bike": "person",
    "bicycle": "person",
    "person": "bag",
    "man": "bag",
    "woman": "bag",
    "cup": "table",
    "bottle": "glass",
    "square": "circle",
    "circle": "square",
}
OTHER_SIDE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}
TASK_TAGS = {
    "detect": "Object Detection",
    "segment": "Image Segmentation",
    "caption": "Image Captioning",
    "describe": "Image Captioning",
    "ocr": "Text Recognition",
    "answer": "Visual Question Answering",
    "question": "Visual Question Answering",
}


def follow_ups(intent: Intent | None, found: int = 0) -> list[str]:
    """Up to MAX_FOLLOW_UPS refinements of ``intent`` (the request that ran;
    ``found``: how many objects it found). None: what to ask first."""
    if intent is None or not intent.runs_model:
        return ["what's in this picture?", "detect the people", "read the text"]
    if intent.task in GROUNDED_TASKS and intent.targets:
        phrases = _grounded(intent, found)
    elif intent.task == "ocr":
        phrases = ["what's in this picture?", "describe this photo"]
    else:
        other = "caption" if intent.task != "caption" else "describe this photo"
        phrases = ["in German", other, "detect the people"]
    if intent.follows_previous:
        phrases.append("undo")
    return phrases[:MAX_FOLLOW_UPS]


def _grounded(intent: Intent, found: int) -> list[str]:
    phrases = ["now as masks" if intent.task == "detect" else "now as boxes"]
    if found >= 3:
        phrases.append("only 1 and 3")
    if (side := _other_side(intent.targets[0])) is not None:
        phrases.append(f"what about the {side}?")
    heads = list(dict.fromkeys(name.split()[-1] for name in intent.targets))
    extra = next(
        (COMPANIONS[h] for h in heads if COMPANIONS.get(h) not in (None, *heads)),
        "person" if "person" not in heads else "car",
    )
    phrases.append(f"also the {extra}")
    phrases.append(
        "zoom into the top left" if intent.region is None else "the whole photo"
    )
    return phrases


def _other_side(target: str) -> str | None:
    """ "left wheel" -> "right wheel"; None without a side word."""
    words = target.split()
    for index, word in enumerate(words):
        if word in OTHER_SIDE:
            return " ".join([*words[:index], OTHER_SIDE[word], *words[index + 1 :]])
    return None


def title_for(intent: Intent | None) -> str:
    """A short title: "Red square detection", "Photo caption"."""
    if intent is None or not intent.runs_model:
        return "Photo analysis"
    if intent.task in GROUNDED_TASKS and intent.targets:
        names = " and ".join(intent.targets[:2])
        kind = "detection" if intent.task == "detect" else "segmentation"
        return f"{names[:1].upper()}{names[1:]} {kind}"
    return {
        "caption": "Photo caption",
        "describe": "Photo description",
        "ocr": "Text in a photo",
    }.get(intent.task, "Photo question")


def tags_for(intent: Intent | None) -> list[str]:
    """Broad, then specific tags: ["Technology", "Computer Vision", ...]."""
    tags = ["Technology", "Computer Vision"]
    if intent is not None and intent.runs_model and intent.task in TASK_TAGS:
        tags.append(TASK_TAGS[intent.task])
    return tags
