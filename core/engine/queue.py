"""One fair queue in front of the model, shared by every chat session and the API.

Jobs run off the event loop on ``workers`` threads (one for the in-process
model; several when the engine batches concurrent requests itself). Who runs
next is decided by ``core.engine.fairness.FairLine``: clients take turns,
chat before API. A caller that stops waiting (its task cancelled: chat Stop
or disconnect, API client hung up, REQUEST_TIMEOUT_S) abandons its job: a
waiting job is dropped before it reaches the model, a running one gets its
``cancel`` event set (the engine stops at the next token).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from core.engine.fairness import API, CHAT, KINDS, FairLine
from core.errors import BusyError, ClientQueueFullError

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["API", "CHAT", "ModelQueue", "Place"]


@dataclass(frozen=True)
class Place:
    """Where a waiting job stands: ``ahead`` jobs finish before it starts (0: it
    starts next), in about ``wait_s`` seconds (None until times are measured)."""

    ahead: int
    wait_s: float | None


@dataclass(eq=False)
class _Job:
    fn: Callable[[], Any]
    client: str
    kind: str
    cancel: threading.Event
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    future: Future = field(default_factory=Future)


class ModelQueue:
    """Fair queue of blocking jobs run on ``workers`` threads.

    ``max_pending`` bounds API jobs waiting or running (BusyError, 503, past
    it); chat jobs are not refused for it. ``per_client`` bounds one client's
    jobs waiting or running (ClientQueueFullError, 429); a ``cap`` given to
    ``submit`` overrides it. ``timeout_s`` bounds how long a caller waits.
    """

    def __init__(
        self,
        max_pending: int = 16,
        timeout_s: float = 900.0,
        workers: int = 1,
        per_client: int = 4,
    ) -> None:
        for name, value in (
            ("max_pending", max_pending),
            ("workers", workers),
            ("per_client", per_client),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self.workers = workers
        self.per_client = per_client
        self._line = FairLine()
        self._running: set[_Job] = set()
        self._cond = threading.Condition(threading.RLock())  # re-entered by _admit
        self._closed = False
        self.service_s: dict[str, float] = {}  # kind -> running mean job time
        self._threads = [
            threading.Thread(target=self._work, name=f"model-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # -- what callers see ------------------------------------------------------
    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        with self._cond:
            return len(self._line) + len(self._running)

    def stats(self) -> dict[str, Any]:
        """For /health: waiting and running jobs by class, the oldest wait."""
        with self._cond:
            now = time.monotonic()
            waiting = self._line.order()
            oldest = min((job.queued_at for job in waiting), default=None)
            return {
                "waiting": {k: self._line.waiting(k) for k in KINDS},
                "running": {
                    k: sum(job.kind == k for job in self._running) for k in KINDS
                },
                "oldest_wait_s": round(now - oldest, 3) if oldest else 0.0,
                "workers": self.workers,
                "service_s": {k: round(s, 3) for k, s in self.service_s.items()},
            }

    def retry_after_s(self, client: str | None = None) -> int:
        """Whole seconds until ``client``'s oldest job should be done (freeing
        one of its places), or until any job is done when it has none."""
        with self._cond:
            order = self._line.order()
            mine = [i for i, job in enumerate(order) if job.client == client]
            running = [j for j in self._running if j.client == client]
            if running:  # its running job frees a place when it ends
                wait = min(self._remaining(job) for job in running)
            elif mine:
                job = order[mine[0]]
                wait = self._wait_s(order, mine[0]) + self._mean(job.kind)
            else:
                wait = min(
                    (self._remaining(job) for job in self._running),
                    default=self._mean(API) / self.workers,
                )
        return max(1, math.ceil(wait))

    async def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        client: str = "anonymous",
        kind: str = API,
        cap: int | None = None,
        cancel: threading.Event | None = None,
        on_position: Callable[[Place], Any] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on a model thread when ``client``'s turn
        comes; await its result.

        ``cancel`` (pass the same event to ``fn``) is set when the caller stops
        waiting. ``on_position(place)`` is called (on the event loop) while the
        job waits, whenever the number of jobs ahead changes, and once with
        ``ahead`` 0 when its turn comes (not at all if it never waited).
        Raises BusyError (full, or timed out), ClientQueueFullError.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        job = _Job(
            functools.partial(fn, *args, **kwargs),
            client,
            kind,
            cancel or threading.Event(),
        )
        with self._cond:
            self._admit(job, self.per_client if cap is None else cap)
            self._line.push(job)
            self._cond.notify()
        future = asyncio.wrap_future(job.future)
        try:
            async with asyncio.timeout(self.timeout_s):
                if on_position is not None:
                    await self._report(job, future, on_position)
                return await asyncio.shield(future)
        except TimeoutError as exc:
            raise BusyError(
                f"The request took longer than {self.timeout_s:.0f} s "
                "(REQUEST_TIMEOUT_S) and was cancelled; try a shorter request "
                "or try again later.",
                retry_after_s=self.retry_after_s(client),
            ) from exc
        finally:
            if not job.future.done():
                self._abandon(job, future)

    def shutdown(self) -> None:
        """Stop the workers; waiting jobs are cancelled."""
        with self._cond:
            self._closed = True
            while (job := self._line.pop()) is not None:
                job.future.cancel()
            self._cond.notify_all()

    # -- inside ----------------------------------------------------------------
    def _admit(self, job: _Job, cap: int) -> None:
        """Raise when ``job`` may not join the line (lock held)."""
        client = job.client
        mine = self._line.of_client(client) + sum(
            other.client == client for other in self._running
        )
        if mine >= cap:
            retry = self.retry_after_s(client)  # re-entrant lock
            setting = " (QUEUE_PER_CLIENT)" if cap == self.per_client else ""
            raise ClientQueueFullError(
                f"You already have {mine} request(s) waiting or running, the most "
                f"one client may queue{setting}; try again in about {retry} s, "
                "when one has finished.",
                retry_after_s=retry,
            )
        if job.kind == API:
            api = self._line.waiting(API) + sum(j.kind == API for j in self._running)
            if api >= self.max_pending:
                retry = self.retry_after_s(client)  # re-entrant lock
                raise BusyError(
                    f"The model is busy with {api} requests (QUEUE_MAX); try "
                    f"again in about {retry} s.",
                    retry_after_s=retry,
                )

    def _abandon(self, job: _Job, future: asyncio.Future) -> None:
        """The caller is gone: drop ``job`` if it waits, else ask it to stop."""
        job.cancel.set()
        with self._cond:
            dropped = self._line.remove(job)
        if dropped:
            job.future.cancel()
            logger.info("dropped an abandoned %s job of %s", job.kind, job.client)
        else:  # running: the engine stops at its next token
            future.add_done_callback(_ignore_result)
            logger.info("cancelling a running %s job of %s", job.kind, job.client)

    def place(self, job: _Job) -> Place:
        """Where ``job`` stands now (ahead 0 once it runs)."""
        with self._cond:
            order = self._line.order()
            if job not in order:
                return Place(0, 0.0)
            index = order.index(job)
            ahead = max(0, index + len(self._running) - self.workers + 1)
            measured = all(j.kind in self.service_s for j in order[:index])
            wait = self._wait_s(order, index) if measured else None
            return Place(ahead, wait)

    def _wait_s(self, order: list[_Job], index: int) -> float:
        """Expected seconds until ``order[index]`` starts (lock held)."""
        busy = sum(self._remaining(job) for job in self._running)
        queued = sum(self._mean(job.kind) for job in order[:index])
        return (busy + queued) / self.workers

    def _mean(self, kind: str) -> float:
        return self.service_s.get(kind, self.service_s.get(API, 1.0))

    def _remaining(self, job: _Job) -> float:
        started = job.started_at or time.monotonic()
        return max(0.0, self._mean(job.kind) - (time.monotonic() - started))

    async def _report(self, job: _Job, future, on_position) -> None:
        last = -1
        while not future.done():
            place = self.place(job)
            if place.ahead != last and (place.ahead or last > 0):  # 0: its turn
                result = on_position(place)
                if asyncio.iscoroutine(result):
                    await result
                last = place.ahead
            if place.ahead == 0:
                return
            await asyncio.wait({future}, timeout=0.5)  # refresh the shown place

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not len(self._line):
                    self._cond.wait()
                if self._closed:
                    return
                job = self._line.pop()
                if job is None or job.cancel.is_set():
                    if job is not None:  # abandoned as it was taken off the line
                        job.future.cancel()
                    continue
                if not job.future.set_running_or_notify_cancel():
                    continue
                job.started_at = time.monotonic()
                self._running.add(job)
            try:
                result = job.fn()
            except BaseException as exc:
                self._finished(job)  # off the books before the caller wakes
                job.future.set_exception(exc)
            else:
                self._finished(job)
                job.future.set_result(result)

    def _finished(self, job: _Job) -> None:
        elapsed = time.monotonic() - (job.started_at or time.monotonic())
        with self._cond:
            self._running.discard(job)
            if not job.cancel.is_set():  # a cut-short job says little of the rest
                mean = self.service_s.get(job.kind)
                self.service_s[job.kind] = (
                    elapsed if mean is None else 0.8 * mean + 0.2 * elapsed
                )


def _ignore_result(future: asyncio.Future) -> None:
    """Retrieve an abandoned job's outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
