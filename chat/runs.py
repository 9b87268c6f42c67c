"""The chat's requests in flight, per session: Stop and disconnect cancel them.

Chainlit's Stop cancels only the session's latest task, and a disconnect
cancels nothing; every message task is registered here so that both end all
of the session's requests. A cancelled task leaves the model queue before
its turn, or stops the model at the next token (core.engine.queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import chainlit as cl

from chat.session import client_key
from core.service import queue_turn

logger = logging.getLogger(__name__)

RUNS_KEY = "runs"
CHAT_PER_SESSION = 2  # one person's requests waiting or running at once


@contextlib.contextmanager
def tracked() -> Iterator[None]:
    """Register the current task (one chat message being answered)."""
    task = asyncio.current_task()
    runs: set[asyncio.Task] = cl.user_session.get(RUNS_KEY) or set()
    cl.user_session.set(RUNS_KEY, runs)
    if task is not None:
        runs.add(task)
    try:
        yield
    finally:
        runs.discard(task)


def cancel_runs(reason: str) -> int:
    """Cancel every request of this session still being answered; how many."""
    runs: set[asyncio.Task] = cl.user_session.get(RUNS_KEY) or set()
    current = asyncio.current_task()
    cancelled = 0
    for task in list(runs):
        if task is not current and not task.done():
            task.cancel()
            cancelled += 1
    if cancelled:
        logger.info("%s: cancelled %d chat request(s)", reason, cancelled)
    return cancelled


_LATER: set[asyncio.Task] = set()  # grace timers, kept until they end


def cancel_unless_back(grace_s: float) -> None:
    """The socket dropped: cancel this session's requests unless it comes back
    within ``grace_s`` (Chainlit restores a session that reconnects with its
    id, on a new socket, and the answer then reaches it). A chat the user
    closed ("new chat") is cancelled at once, and so is every request when
    ``grace_s`` is 0."""
    session = cl.context.session
    if grace_s <= 0 or getattr(session, "to_clear", False):
        cancel_runs("disconnect")
        return
    if not cl.user_session.get(RUNS_KEY):
        return  # nothing in flight
    dropped = session.socket_id

    async def later() -> None:
        await asyncio.sleep(grace_s)  # a timer: the grace period itself
        if session.socket_id == dropped:
            cancel_runs(f"no reconnect within {grace_s:g} s")
        else:
            logger.info("session came back within %g s: its requests go on", grace_s)

    task = asyncio.create_task(later())
    _LATER.add(task)
    task.add_done_callback(_LATER.discard)


def chat_client() -> str:
    """This session's turn in the model queue (core.service.queue_turn): the
    logged-in user, else this session (people behind one address do not wait
    for each other)."""
    session = cl.context.session
    return queue_turn(client_key(session), session.id)
