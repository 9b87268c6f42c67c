"""Short conversations for parse_intent tests."""

from __future__ import annotations

from core.intent.parse import parse_intent
from core.types import Intent


def reply_to(*texts: str) -> Intent:
    """The Intent of the last text, each earlier one that ran as the previous."""
    previous = None
    for text in texts:
        intent = parse_intent(text, previous)
        if intent.action == "run":
            previous = intent
    return intent
