from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.engine.queue import ModelQueue
from core.errors import BusyError


async def test_jobs_never_overlap_and_keep_fifo_order():
    queue = ModelQueue(max_pending=10)
    running = threading.Semaphore(1)
    order: list[int] = []

    def job(i: int) -> int:
        assert running.acquire(blocking=False), "two jobs ran at once"
        try:
            time.sleep(0.01)
            order.append(i)
            return i * i
        finally:
            running.release()

    results = await asyncio.gather(*(queue.submit(job, i) for i in range(6)))
    assert results == [i * i for i in range(6)]
    assert order == list(range(6))
    assert queue.depth == 0


async def test_full_queue_refuses_with_retry_after():
    queue = ModelQueue(max_pending=2)
    gate = threading.Event()
    first = asyncio.ensure_future(queue.submit(gate.wait, 5))
    second = asyncio.ensure_future(queue.submit(gate.wait, 5))
    await asyncio.sleep(0.05)
    with pytest.raises(BusyError, match="busy") as info:
        await queue.submit(lambda: None)
    assert info.value.retry_after_s >= 1
    gate.set()
    assert await first and await second
    assert await queue.submit(lambda: "ok") == "ok"  # room again


async def test_waiting_caller_hears_its_place():
    queue = ModelQueue(max_pending=5)
    gate = threading.Event()
    blockers = [asyncio.ensure_future(queue.submit(gate.wait, 5)) for _ in range(2)]
    await asyncio.sleep(0.05)
    positions: list[int] = []
    waiter = asyncio.ensure_future(
        queue.submit(lambda: "done", on_position=positions.append)
    )
    await asyncio.sleep(0.1)
    gate.set()
    assert await waiter == "done"
    await asyncio.gather(*blockers)
    assert positions[0] == 2
    assert positions == sorted(positions, reverse=True)


async def test_timeout_is_a_clear_error_and_the_job_still_finishes():
    queue = ModelQueue(max_pending=3, timeout_s=0.05)
    with pytest.raises(BusyError, match="longer than"):
        await queue.submit(time.sleep, 0.3)
    assert queue.depth == 1  # still running on the worker
    await asyncio.sleep(0.4)
    assert queue.depth == 0


async def test_job_errors_reach_the_caller_and_free_the_slot():
    queue = ModelQueue(max_pending=1)

    def fails():
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await queue.submit(fails)
    assert queue.depth == 0
    assert await queue.submit(lambda: 1) == 1


async def test_several_workers_run_jobs_side_by_side():
    queue = ModelQueue(max_pending=8, workers=3)
    started = threading.Barrier(3, timeout=5)  # all three must be running at once

    def job() -> str:
        started.wait()
        return "ok"

    assert await asyncio.gather(*(queue.submit(job) for _ in range(3))) == ["ok"] * 3
