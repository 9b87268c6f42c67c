"""What the chat tells its user when the history or the disk fails.

- The history database away: after a turn's writes are flushed (at most
  HISTORY_WRITE_TIMEOUT_S), one notice per outage per session; the writes are
  kept in memory and saved when it is back (core.persist.outbox).
- A file or state that could not be written under DATA_DIR: the failures of
  the turn are remembered (``remember_unsaved``) and said once, path-free,
  with the answer or at the end of the turn (``take_unsaved_note``).
"""

from __future__ import annotations

import logging

import chainlit as cl
from chainlit.data import get_data_layer

from chat.persist import history
from core.persist.disk import disk_problem, not_saved_note
from core.persist.service import Persistence

logger = logging.getLogger(__name__)

HISTORY_NOT_SAVED = (
    "⚠️ The chat history is not being saved right now: its database does not "
    "answer. The chat goes on, and what is said is kept in memory and saved "
    "when the database is back (unless this server restarts first)."
)
_TOLD = "history_outage_told"  # the outage number this session was told about
_UNSAVED = "unsaved_problems"  # what could not be written in this turn


async def flush_history(persist: Persistence) -> None:
    """Wait (bounded) for this turn's history writes; tell the user once per
    database outage that the history is not being saved."""
    outage = await history.flush(persist, get_data_layer())
    if outage is None or cl.user_session.get(_TOLD) == outage:
        return
    cl.user_session.set(_TOLD, outage)
    await cl.Message(content=HISTORY_NOT_SAVED).send()


def remember_unsaved(exc: OSError, what: str) -> None:
    """Note that ``what`` (e.g. "the overlay") could not be written."""
    logger.error("could not save %s: %s", what, exc)
    problems = cl.user_session.get(_UNSAVED) or []
    cl.user_session.set(_UNSAVED, [*problems, disk_problem(exc)])


def take_unsaved_note() -> str:
    """The note for what this turn could not save ("" when all was saved);
    said once: the problems are forgotten here."""
    problems = cl.user_session.get(_UNSAVED) or []
    cl.user_session.set(_UNSAVED, [])
    return not_saved_note(problems) if problems else ""
