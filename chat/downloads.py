"""Download buttons of a chat answer: files built when asked for, not after
every answer.

Each grounded answer with objects carries one button per export format
(``core.export.formats.FORMATS``); its payload names the turn the answer
showed. A click (chat.clicks) replays that kept turn (no generation: its masks
are decoded again from the kept answer, as for undo), writes that one file and
attaches it to the answer. "export" writes every format at once (chat.replies,
``core.export.downloads.write_export_all``).
"""

from __future__ import annotations

import logging
from typing import Any

import chainlit as cl

from core.conversation import Conversation, ImageRecord, Turn
from core.export.formats import FORMAT_NAMES, FORMATS
from core.types import GROUNDED_TASKS

logger = logging.getLogger(__name__)

DOWNLOAD_ACTION = "download"  # @cl.action_callback name (chainlit_app.py)
GONE = (
    "That answer is no longer kept (undone, or its photo was removed), so its "
    "file cannot be built: ask again, or type *export* for the current result."
)


def download_actions(record: ImageRecord) -> list[cl.Action]:
    """One button per format for the newest turn on ``record`` (the answer
    being sent); none when the session keeps no turn for it."""
    conversation: Conversation | None = cl.user_session.get("conversation")
    turn = conversation.last_turn(record.id) if conversation else None
    if turn is None:
        return []
    return [
        cl.Action(
            name=DOWNLOAD_ACTION,
            payload={"image": record.id, "turn": turn.index, "format": fmt.name},
            label=fmt.label,
            icon="download",
            tooltip=f"Download {fmt.label} ({fmt.file_name('…')})",
        )
        for fmt in FORMATS
    ]


def kept_turn(
    conversation: Conversation | None, payload: Any
) -> tuple[ImageRecord, Turn, str] | None:
    """The photo, grounded turn and format a button's ``payload`` names, or
    None. The payload comes back from the client: only this session's own
    conversation is searched, and every field is checked."""
    if conversation is None or not isinstance(payload, dict):
        return None
    image, index, name = (payload.get(k) for k in ("image", "turn", "format"))
    if (
        not isinstance(index, int)
        or isinstance(index, bool)
        or name not in FORMAT_NAMES
    ):
        return None
    record = next((r for r in conversation.images if r.id == image), None)
    turn = next(
        (t for t in conversation.history if t.index == index and t.image_id == image),
        None,
    )
    if record is None or turn is None or turn.intent.task not in GROUNDED_TASKS:
        return None
    return record, turn, name
