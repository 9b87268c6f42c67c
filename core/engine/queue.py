"""One queue in front of the model, shared by every chat session and the API.

Jobs run off the event loop; with the in-process model, one at a time on a
single worker thread, so concurrent chat and API requests never run the model
at the same time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.errors import BusyError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ModelQueue:
    """Bounded FIFO of blocking jobs run on ``workers`` threads (default one).

    One worker for the in-process model; several when the model is a remote
    engine that batches concurrent requests itself (BACKEND=openai).

    ``max_pending`` counts waiting and running jobs; beyond it ``submit``
    raises BusyError at once. ``timeout_s`` bounds how long a caller waits;
    a job that times out still finishes on the worker (threads cannot be
    killed) and keeps its place in the count until it does.
    """

    def __init__(
        self, max_pending: int = 16, timeout_s: float = 900.0, workers: int = 1
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.max_pending = max_pending
        self.timeout_s = timeout_s
        self.workers = workers
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="model"
        )
        self._lock = threading.Lock()
        self._tickets: list[int] = []  # FIFO of waiting + running job ids
        self._next_ticket = 0
        self.avg_job_s = 10.0  # running mean, for Retry-After estimates

    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        with self._lock:
            return len(self._tickets)

    def retry_after_s(self) -> int:
        """A polite estimate of when a slot frees up, in whole seconds."""
        return max(1, round(self.avg_job_s))

    async def submit(
        self,
        fn: Callable[..., T],
        *args: Any,
        on_position: Callable[[int], Any] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the model thread and await its result.

        ``on_position(n)`` is called (on the event loop) with the number of
        jobs ahead when that number is above zero, and again as it shrinks.
        """
        with self._lock:
            if len(self._tickets) >= self.max_pending:
                raise BusyError(
                    f"The model is busy with {len(self._tickets)} requests; "
                    f"try again in about {self.retry_after_s()} s.",
                    retry_after_s=self.retry_after_s(),
                )
            ticket = self._next_ticket
            self._next_ticket += 1
            self._tickets.append(ticket)
        loop = asyncio.get_running_loop()
        job = functools.partial(self._run, ticket, fn, *args, **kwargs)
        future = loop.run_in_executor(self._executor, job)
        try:
            if on_position is not None:
                await self._report_positions(ticket, future, on_position)
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError as exc:
            raise BusyError(
                f"The request took longer than {self.timeout_s:.0f} s and was "
                "abandoned; try a shorter request or try again later.",
                retry_after_s=self.retry_after_s(),
            ) from exc

    def ahead_of(self, ticket: int) -> int:
        """Jobs that must finish before ``ticket`` starts (0: it is running)."""
        with self._lock:
            if ticket not in self._tickets:
                return 0
            return max(0, self._tickets.index(ticket) - self.workers + 1)

    async def _report_positions(self, ticket, future, on_position) -> None:
        last = -1
        while not future.done():
            ahead = self.ahead_of(ticket)
            if ahead == 0:
                return
            if ahead != last:
                result = on_position(ahead)
                if asyncio.iscoroutine(result):
                    await result
                last = ahead
            await asyncio.wait({future}, timeout=0.5)

    def _run(self, ticket: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._tickets.remove(ticket)
                self.avg_job_s = 0.8 * self.avg_job_s + 0.2 * elapsed

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
