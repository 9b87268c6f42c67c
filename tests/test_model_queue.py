from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.engine.queue import API, CHAT, ModelQueue, Place
from core.errors import BusyError, ClientQueueFullError


async def until(predicate, timeout_s: float = 10.0) -> None:
    """Wait for a condition of the queue (yielding to the loop), or fail."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


class Gate:
    """A job that holds the worker until released; says when it started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.release.wait(10), "gate never released"
        return "gate"

    async def occupy(self, queue: ModelQueue, client: str = "gate") -> asyncio.Future:
        task = asyncio.ensure_future(queue.submit(self, client=client))
        await asyncio.to_thread(self.started.wait, 10)
        return task


async def test_jobs_never_overlap_and_one_client_keeps_fifo_order():
    queue = ModelQueue(max_pending=10, per_client=10)
    running = threading.Semaphore(1)
    order: list[int] = []

    def job(i: int) -> int:
        assert running.acquire(blocking=False), "two jobs ran at once"
        try:
            order.append(i)
            return i * i
        finally:
            running.release()

    results = await asyncio.gather(*(queue.submit(job, i) for i in range(6)))
    assert results == [i * i for i in range(6)]
    assert order == list(range(6))
    assert queue.depth == 0


async def test_clients_take_turns_and_chat_goes_first():
    queue = ModelQueue(max_pending=20, per_client=5)
    gate = Gate()
    blocker = await gate.occupy(queue)
    ran: list[str] = []
    submitted = [("a", API, "a1"), ("a", API, "a2"), ("a", API, "a3")]
    submitted += [("b", API, "b1"), ("b", API, "b2"), ("s", CHAT, "chat")]
    tasks = [
        asyncio.ensure_future(queue.submit(ran.append, name, client=c, kind=k))
        for c, k, name in submitted
    ]
    await until(lambda: queue.stats()["waiting"] == {"chat": 1, "api": 5})
    gate.release.set()
    await asyncio.gather(blocker, *tasks)
    assert ran == ["chat", "a1", "b1", "a2", "b2", "a3"]


async def test_a_client_over_its_cap_gets_429_with_retry_after_from_its_backlog():
    queue = ModelQueue(max_pending=20, per_client=2)
    queue.service_s = {API: 2.0}  # measured: 2 s a job
    gate = Gate()
    blocker = await gate.occupy(queue)
    tasks = [
        asyncio.ensure_future(queue.submit(str, i, client=client))
        for i, client in enumerate(["x", "y", "x", "y"])
    ]
    await until(lambda: queue.stats()["waiting"]["api"] == 4)
    with pytest.raises(ClientQueueFullError, match="QUEUE_PER_CLIENT") as full:
        await queue.submit(str, 9, client="x")
    assert full.value.http_status == 429
    # x's first job is next: the running job (< 2 s left) + its own 2 s
    assert full.value.retry_after_s == 4
    # y's first job is behind x's: 2 s more
    assert queue.retry_after_s("y") == 6
    other = asyncio.ensure_future(queue.submit(str, 5, client="z"))
    await until(lambda: queue.stats()["waiting"]["api"] == 5)  # z still has room
    gate.release.set()
    await asyncio.gather(blocker, other, *tasks)


async def test_a_full_api_line_is_503_but_chat_still_waits_its_turn():
    queue = ModelQueue(max_pending=2, per_client=5)
    gate = Gate()
    blocker = await gate.occupy(queue, client="a")
    second = asyncio.ensure_future(queue.submit(str, 2, client="b"))
    await until(lambda: queue.depth == 2)
    with pytest.raises(BusyError, match="busy") as busy:
        await queue.submit(str, 3, client="c")
    assert busy.value.http_status == 503 and busy.value.retry_after_s >= 1
    chat = asyncio.ensure_future(queue.submit(str, "hi", client="s", kind=CHAT))
    await until(lambda: queue.stats()["waiting"]["chat"] == 1)
    gate.release.set()
    assert await chat == "hi"
    assert await second == "2" and await blocker == "gate"
    assert await queue.submit(lambda: "ok") == "ok"  # room again


async def test_an_abandoned_waiting_job_never_runs():
    queue = ModelQueue()
    gate = Gate()
    blocker = await gate.occupy(queue)
    ran: list[str] = []
    waiter = asyncio.ensure_future(queue.submit(ran.append, "gone", client="w"))
    await until(lambda: queue.stats()["waiting"]["api"] == 1)
    waiter.cancel()  # the client hung up / pressed Stop
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.stats()["waiting"] == {"chat": 0, "api": 0}
    gate.release.set()
    await blocker
    assert await queue.submit(ran.append, "next") is None
    assert ran == ["next"]  # "gone" never reached the model
    assert queue.depth == 0


async def test_a_request_that_times_out_is_cancelled_in_the_queue():
    queue = ModelQueue(timeout_s=0.2)
    gate = Gate()
    blocker = await gate.occupy(queue)
    ran: list[str] = []
    with pytest.raises(BusyError, match="REQUEST_TIMEOUT_S"):
        await queue.submit(ran.append, "late", client="w")
    assert queue.stats()["waiting"]["api"] == 0  # dropped, not left waiting
    gate.release.set()
    with pytest.raises(BusyError):  # the gate job itself timed out too
        await blocker
    assert ran == []


async def test_abandoning_a_running_job_sets_its_cancel_event_and_frees_the_worker():
    queue = ModelQueue()
    cancel = threading.Event()
    started = threading.Event()

    def generate(cancel: threading.Event) -> str:
        started.set()
        return "stopped" if cancel.wait(10) else "finished"

    task = asyncio.ensure_future(queue.submit(generate, cancel, cancel=cancel))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancel.is_set()
    await until(lambda: queue.depth == 0)  # the worker is free again
    assert await queue.submit(lambda: "next") == "next"


async def test_a_waiting_caller_hears_its_place_and_expected_wait():
    queue = ModelQueue(per_client=5)
    queue.service_s = {API: 2.0, CHAT: 1.0}
    gate = Gate()
    blocker = await gate.occupy(queue)
    others = [
        asyncio.ensure_future(queue.submit(str, i, client=c))
        for i, c in enumerate("ab")
    ]
    places: list[Place] = []
    waiter = asyncio.ensure_future(
        queue.submit(lambda: "done", client="c", on_position=places.append)
    )
    await until(lambda: bool(places))
    assert places[0].ahead == 3  # the running job and two waiting ones
    assert 5.0 < places[0].wait_s <= 6.0  # < 2 s left + 2 + 2
    gate.release.set()
    assert await waiter == "done"
    await asyncio.gather(blocker, *others)
    aheads = [p.ahead for p in places]  # shrinking; 0 if seen before the end
    assert aheads == sorted(set(aheads), reverse=True)


async def test_stats_report_depth_by_class_and_the_oldest_wait():
    queue = ModelQueue(per_client=5)
    gate = Gate()
    blocker = await gate.occupy(queue)
    chat = asyncio.ensure_future(queue.submit(str, 1, client="s", kind=CHAT))
    api = asyncio.ensure_future(queue.submit(str, 2, client="a"))
    await until(lambda: queue.depth == 3)
    stats = queue.stats()
    assert stats["waiting"] == {"chat": 1, "api": 1}
    assert stats["running"] == {"chat": 0, "api": 1}
    assert stats["oldest_wait_s"] >= 0.0 and stats["workers"] == 1
    gate.release.set()
    await asyncio.gather(blocker, chat, api)
    stats = queue.stats()
    assert stats["waiting"] == {"chat": 0, "api": 0} and stats["oldest_wait_s"] == 0
    assert set(stats["service_s"]) == {"chat", "api"}  # measured


async def test_job_errors_reach_the_caller_and_free_the_slot():
    queue = ModelQueue(max_pending=1)

    def fails():
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await queue.submit(fails)
    assert queue.depth == 0
    assert await queue.submit(lambda: 1) == 1


async def test_several_workers_run_jobs_side_by_side():
    queue = ModelQueue(max_pending=8, workers=3, per_client=3)
    started = threading.Barrier(3, timeout=5)  # all three must be running at once

    def job() -> str:
        started.wait()
        return "ok"

    assert await asyncio.gather(*(queue.submit(job) for _ in range(3))) == ["ok"] * 3


@pytest.mark.parametrize("name", ["max_pending", "workers", "per_client"])
def test_bad_sizes_are_refused(name):
    with pytest.raises(ValueError, match=f"{name} must be >= 1"):
        ModelQueue(**{name: 0})


async def test_retry_after_of_a_client_with_a_running_job_is_that_jobs_rest():
    queue = ModelQueue(per_client=5, workers=2)
    queue.service_s = {CHAT: 30.0, API: 2.0}
    slow, quick = Gate(), Gate()
    slow_task = asyncio.ensure_future(queue.submit(slow, client="slow", kind=CHAT))
    quick_task = asyncio.ensure_future(queue.submit(quick, client="quick"))
    await asyncio.to_thread(slow.started.wait, 10)
    await asyncio.to_thread(quick.started.wait, 10)
    assert 29 <= queue.retry_after_s("slow") <= 30  # its own job's rest
    assert queue.retry_after_s("quick") == 2
    assert queue.retry_after_s("newcomer") == 2  # nothing queued: next free slot
    slow.release.set()
    quick.release.set()
    await asyncio.gather(slow_task, quick_task)


@pytest.mark.parametrize("fails", [False, True])
async def test_a_finished_job_is_off_the_books_when_its_caller_wakes(fails):
    """/health right after an answer must not count the answered job: the job
    leaves the running set before its caller's future is resolved."""

    resolved_first: list[bool] = []

    class Recording(ModelQueue):
        def _finished(self, job) -> None:
            resolved_first.append(job.future.done())
            super()._finished(job)

    queue = Recording(max_pending=4, per_client=4)

    def job() -> str:
        if fails:
            raise RuntimeError("model failed")
        return "done"

    for _ in range(3):
        try:
            await queue.submit(job)
        except RuntimeError:
            pass
        assert queue.depth == 0
    assert resolved_first == [False, False, False]
