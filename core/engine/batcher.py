"""An engine-level micro-batcher: concurrent calls share one model run.

Several queue workers call ``submit`` at once; one batch thread takes the
oldest waiting job plus every waiting job with the same key (up to
``batch_max``), runs them as one batch and hands each caller its own result.
There is no gathering timer: a lone request starts at once, and requests that
arrive while a batch runs form the next one, so batches grow with the load.
Pure Python (no torch), so it is tested without a model.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    key: Hashable
    payload: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class MicroBatcher:
    """Runs ``run_batch(payloads) -> results`` (same order) on batches of jobs.

    Jobs with different keys (e.g. different sampling settings) never share a
    batch. ``batch_sizes`` records every batch run, for tests and logs.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Any]], Sequence[Any]],
        batch_max: int,
        name: str = "model-batch",
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be >= 1, got {batch_max}")
        self._run_batch = run_batch
        self.batch_max = batch_max
        self.batch_sizes: list[int] = []
        self._pending: deque[_Job] = deque()
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, payload: Any, key: Hashable = None) -> Any:
        """Run ``payload`` in the next batch with its key; block for its result.

        Re-raises the exception the batch raised (every job of it gets it).
        """
        job = _Job(key, payload)
        with self._wake:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.append(job)
            self._wake.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Stop the batch thread once the waiting jobs have run."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout=60)

    def _take(self) -> list[_Job] | None:
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if not self._pending:
                return None
            first = self._pending.popleft()
            batch = [first]
            for job in list(self._pending):
                if len(batch) >= self.batch_max:
                    break
                if job.key == first.key:
                    self._pending.remove(job)
                    batch.append(job)
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            self.batch_sizes.append(len(batch))
            try:
                results = self._run_batch([job.payload for job in batch])
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"run_batch returned {len(results)} results for "
                        f"{len(batch)} jobs"
                    )
                for job, result in zip(batch, results, strict=True):
                    job.result = result
            except BaseException as exc:  # every caller of the batch gets it
                logger.exception("a batch of %d failed", len(batch))
                for job in batch:
                    job.error = exc
            finally:
                for job in batch:
                    job.done.set()
