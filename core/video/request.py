"""Chat text about a clip -> the request each sampled frame runs: "track the
cars" is "detect cars" (tracking is what video adds), and "in this clip",
"in the video" only say where to look."""

from __future__ import annotations

import re

from core.errors import UserInputError
from core.intent import parse_intent
from core.types import GROUNDED_TASKS, Intent

_TRACK = re.compile(r"^\s*(?:please\s+)?(?:track|follow)\b", re.IGNORECASE)
_WHERE = re.compile(
    r"\s*\b(?:in|across|through(?:out)?|over|from)\s+(?:this|the|that|my)\s+"
    r"(?:clip|video|movie|footage|recording)\b",
    re.IGNORECASE,
)
NOT_GROUNDED = (
    'For a video, ask for objects to follow: "track the cars", '
    '"detect people in the video" or "segment the dog in this clip".'
)


def video_request(text: str) -> Intent:
    """The detect/segment Intent ``text`` asks of every sampled frame;
    UserInputError (what to type) for anything else."""
    cleaned = _WHERE.sub("", text).strip(" .!?")
    cleaned = _TRACK.sub("detect", cleaned)
    intent = parse_intent(cleaned)
    if not intent.runs_model or intent.task not in GROUNDED_TASKS:
        raise UserInputError(intent.message or NOT_GROUNDED)
    return intent


def is_video_request(text: str) -> bool:
    """Whether ``text`` names a clip or asks to track (a chat photo request
    otherwise)."""
    return bool(_TRACK.match(text) or _WHERE.search(text))
