"""History writes that survive a database outage: in order, bounded in time,
retried once, kept in memory while the database is away, replayed when it is
back.

``HistoryOutbox.write`` runs one write (a callable making a fresh attempt)
after every write started before it. A write whose statement fails or takes
longer than ``timeout_s`` (``HistoryUnavailable``) is tried once more at once
when it failed fast (a pooled connection that died with a restarted server),
then kept: the outbox is "down" and later writes go straight into the queue,
except one probe every ``retry_every_s`` (a background retry too, so a thread
is saved when the database returns even if nobody writes). A probe that works
replays the queue in order, then the new write. The queue is bounded per
thread (``per_thread``); past it, writes are dropped and logged.

No framework here: the chat's data layer (chat.persist.db) feeds it, the chat
tells the user once per outage (``outage``, ``saving``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

PER_THREAD = 2000  # writes kept per thread while the database is away (~200 turns)
RETRY_EVERY_S = 2.0  # a probe of the database at most this often while it is away
# Inside a write: a failed statement raises (the write is kept), elsewhere
# (reads) it answers "nothing" as Chainlit expects.
IN_WRITE: ContextVar[bool] = ContextVar("history_in_write", default=False)


class HistoryUnavailable(Exception):
    """A history statement failed or did not answer in time."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


async def bounded(awaitable: Awaitable[Any], timeout_s: float, what: str) -> Any:
    """``await awaitable`` for at most ``timeout_s``: HistoryUnavailable past it.

    The work runs as a task of its own that is cancelled and left behind on
    timeout, so a database that hangs cannot hold the caller in the driver's
    clean-up (a rollback on a connection that never answers).
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise HistoryUnavailable(
            f"{what}: no answer in {timeout_s:g} s", timed_out=True
        )
    return task.result()


@dataclass
class _Pending:
    thread_id: str | None
    label: str
    attempt: Callable[[], Awaitable[Any]]


class HistoryOutbox:
    """Ordered, bounded, retried history writes (see the module doc)."""

    def __init__(
        self,
        timeout_s: float,
        per_thread: int = PER_THREAD,
        retry_every_s: float = RETRY_EVERY_S,
    ) -> None:
        self.timeout_s = timeout_s
        self.per_thread = per_thread
        self.retry_every_s = retry_every_s
        self.outage = 0  # number of outages so far: a session tells each once
        self.down_since: float | None = None
        self.dropped = 0
        self._queue: deque[_Pending] = deque()
        self._per_thread: Counter[str | None] = Counter()
        self._last_try = 0.0
        self._lock = asyncio.Lock()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._retry: asyncio.Task | None = None

    @property
    def saving(self) -> bool:
        """False while writes are kept in memory (the database is away)."""
        return self.down_since is None

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def write(
        self, thread_id: str | None, label: str, attempt: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run ``attempt()`` in order; None when it was kept for later."""
        if IN_WRITE.get():  # a write calling another (update_step -> create_step)
            return await attempt()
        self._in_flight += 1
        self._idle.clear()
        try:
            async with self._lock:
                token = IN_WRITE.set(True)
                try:
                    return await self._write(_Pending(thread_id, label, attempt))
                finally:
                    IN_WRITE.reset(token)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _write(self, write: _Pending) -> Any:
        if self.down_since is not None:
            due = time.monotonic() - self._last_try >= self.retry_every_s
            if not due or not await self._replay():
                self._keep(write)
                return None
        try:
            return await self._attempt(write)
        except HistoryUnavailable as exc:
            self._went_down(exc)
            self._keep(write)
            return None

    async def _attempt(self, write: _Pending) -> Any:
        """``write.attempt()``; once more at once when it failed fast."""
        try:
            return await write.attempt()
        except HistoryUnavailable as exc:
            if exc.timed_out:
                raise
            logger.info("history write %s failed, retrying once: %s", write.label, exc)
            return await write.attempt()
        finally:
            self._last_try = time.monotonic()

    async def _replay(self) -> bool:
        """Replay the kept writes in order; False (and the rest kept) when the
        database is still away. A write that fails for another reason (its
        file is gone) is logged and dropped, as Chainlit does."""
        replayed = 0
        while self._queue:
            write = self._queue[0]
            try:
                await self._attempt(write)
            except HistoryUnavailable as exc:
                logger.warning("history database still unavailable: %s", exc)
                return False
            except Exception:
                logger.exception("history write %s dropped on replay", write.label)
            self._queue.popleft()
            self._per_thread[write.thread_id] -= 1
            replayed += 1
        if self.down_since is not None:
            away = time.monotonic() - self.down_since
            logger.warning(
                "history database back after %.0f s: %d kept write(s) saved",
                away,
                replayed,
            )
        self.down_since = None
        self._per_thread.clear()
        return True

    def _went_down(self, exc: HistoryUnavailable) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outage += 1
            logger.error(
                "chat history NOT SAVED: the database failed (%s); keeping writes "
                "in memory and retrying every %g s",
                exc,
                self.retry_every_s,
            )
        if self._retry is None or self._retry.done():
            # An empty context: the retry belongs to no chat session.
            self._retry = asyncio.get_running_loop().create_task(
                self._retry_loop(), context=contextvars.Context()
            )

    def _keep(self, write: _Pending) -> None:
        if self._per_thread[write.thread_id] >= self.per_thread:
            self.dropped += 1
            logger.error(
                "history write %s of thread %s dropped: %d writes of it are "
                "already waiting for the database",
                write.label,
                write.thread_id,
                self.per_thread,
            )
            return
        self._queue.append(write)
        self._per_thread[write.thread_id] += 1

    async def _retry_loop(self) -> None:
        while self.down_since is not None:
            await asyncio.sleep(self.retry_every_s)
            async with self._lock:
                token = IN_WRITE.set(True)
                try:
                    await self._replay()
                finally:
                    IN_WRITE.reset(token)

    def close(self) -> None:
        """Stop the background retry (what is kept stays kept)."""
        if self._retry is not None:
            self._retry.cancel()

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the writes started so far are done (or kept); False on
        timeout (default ``timeout_s``)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            async with asyncio.timeout(limit):
                while True:
                    await asyncio.sleep(0)  # let writes just scheduled start
                    await self._idle.wait()
                    await asyncio.sleep(0)
                    if self._idle.is_set():
                        return True
        except TimeoutError:
            logger.warning("history writes still running after %.1f s", limit)
            return False
