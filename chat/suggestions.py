"""Follow-up suggestions under a grounded answer: one click sends the phrase.

The phrases come from ``core.followups`` (the same ones the OpenAI door gives
Open WebUI). A click posts the action to Chainlit's ``/project/action``; its
payload is client data like typed text, so it goes through the very same path
as a typed message (``chat.replies.handle_message``: length limit, parser,
rate limit) after being shown in the chat as the user's words.
"""

from __future__ import annotations

import logging

import chainlit as cl

from core.followups import follow_ups
from core.types import AnalysisResult

logger = logging.getLogger(__name__)

FOLLOW_UP = "follow_up"  # the action's name, registered in chainlit_app.py
MAX_PHRASE_CHARS = 200


def suggestion_actions(result: AnalysisResult) -> list[cl.Action]:
    """One button per follow-up of ``result`` ("now as masks", ...)."""
    phrases = follow_ups(result.intent, len(result.detections))
    return [
        cl.Action(name=FOLLOW_UP, payload={"phrase": p}, label=p, tooltip=f"Say “{p}”")
        for p in phrases
    ]


async def follow_up_message(action: cl.Action) -> cl.Message | None:
    """The clicked phrase, shown as the user's message; None for a payload
    that is not a short phrase (nothing is run)."""
    phrase = action.payload.get("phrase") if isinstance(action.payload, dict) else None
    if not isinstance(phrase, str) or not phrase.strip():
        logger.info("follow-up action without a phrase ignored")
        return None
    phrase = " ".join(phrase.split())[:MAX_PHRASE_CHARS]
    message = cl.Message(content=phrase, author="User", type="user_message")
    await message.send()
    return message
