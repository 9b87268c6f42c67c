"""What a click on an answer's download button does: build its file, attach it.

The buttons and their payload are chat.downloads'; this module replays the
turn (chat.analysis), so chat.analysis can send buttons without importing it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import chainlit as cl

from chat.analysis import replay_turn, say, visible
from chat.charge import charge
from chat.downloads import GONE, kept_turn
from chat.faults import flush_history
from chat.services import ChatServices
from core.errors import AppError
from core.export import ExportItem
from core.export.downloads import Download, write_result_export
from core.persist.disk import disk_problem
from core.security import escape_markdown

logger = logging.getLogger(__name__)


async def on_download(services: ChatServices, action: cl.Action) -> None:
    """A download button was clicked: build its file and attach it."""
    found = kept_turn(cl.user_session.get("conversation"), action.payload)
    if found is None:
        await say(GONE)
        return
    record, turn, name = found
    try:  # the masks are decoded again: one hit, like undo (RateLimitedError)
        charge(services, 1)
        result = await replay_turn(services, turn, record)
    except AppError as exc:
        await say(f"⚠️ {escape_markdown(exc.message)}")
        return
    shown = visible(result, turn.hidden)
    item = ExportItem(
        record.name, record.size_wh, shown.detections, captions=shown.object_captions
    )
    try:
        download = await asyncio.to_thread(
            write_result_export, Path(record.path), item, name
        )
    except OSError as exc:  # the file is written before it is sent
        logger.error("could not write the download %s: %s", name, exc)
        await say(f"⚠️ No download: it could not be written ({disk_problem(exc)}).")
        return
    logger.info("download %s of turn %d built on request", name, turn.index)
    await as_file(download).send(for_id=action.forId or "")
    await action.remove()  # its file is attached: no second copy
    await flush_history(services.persist)


def as_file(download: Download) -> cl.File:
    return cl.File(path=str(download.path), name=download.name)
