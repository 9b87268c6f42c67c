"""MicroBatcher: concurrent submits share batches; keys, order and errors."""

from __future__ import annotations

import threading

import pytest

from core.engine.batcher import MicroBatcher


class GatedRun:
    """run_batch that holds its first batch until ``release`` is set, so the
    test can queue jobs behind it deterministically (no sleeps)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, payloads):
        self.batches.append(list(payloads))
        if len(self.batches) == 1:
            self.started.set()
            self.release.wait(timeout=30)
        return [f"answer to {p}" for p in payloads]


def _submit_all(batcher, jobs):
    results: dict[str, object] = {}

    def run(payload, key):
        try:
            results[payload] = batcher.submit(payload, key=key)
        except Exception as exc:
            results[payload] = exc

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    return results, threads


def _queued(batcher, count) -> None:
    """Wait until ``count`` jobs wait in the batcher (condition, not time)."""
    with batcher._wake:
        assert batcher._wake.wait_for(lambda: len(batcher._pending) >= count, 30)


def test_jobs_that_arrive_while_a_batch_runs_share_the_next_batch() -> None:
    run = GatedRun()
    batcher = MicroBatcher(run, batch_max=3)
    first, first_threads = _submit_all(batcher, [("a", None)])
    assert run.started.wait(30)
    rest, threads = _submit_all(batcher, [(p, None) for p in "bcde"])
    _queued(batcher, 4)
    run.release.set()
    for thread in first_threads + threads:
        thread.join(30)
    assert run.batches[0] == ["a"]
    assert sorted(p for batch in run.batches[1:] for p in batch) == list("bcde")
    assert batcher.batch_sizes == [1, 3, 1]  # at most batch_max per batch
    assert {**first, **rest} == {p: f"answer to {p}" for p in "abcde"}
    batcher.close()


def test_jobs_with_different_keys_never_share_a_batch() -> None:
    run = GatedRun()
    batcher = MicroBatcher(run, batch_max=8)
    _, first_threads = _submit_all(batcher, [("a", "greedy")])
    assert run.started.wait(30)
    _, threads = _submit_all(
        batcher, [("b", "greedy"), ("c", "sample"), ("d", "greedy")]
    )
    _queued(batcher, 3)
    run.release.set()
    for thread in first_threads + threads:
        thread.join(30)
    later = [sorted(batch) for batch in run.batches[1:]]
    assert sorted(later) == [["b", "d"], ["c"]]
    batcher.close()


def test_a_failing_batch_raises_in_every_caller_and_the_batcher_goes_on() -> None:
    calls = []

    def run_batch(payloads):
        calls.append(list(payloads))
        if payloads[0] == "bad":
            raise RuntimeError("out of memory")
        return list(payloads)

    batcher = MicroBatcher(run_batch, batch_max=4)
    with pytest.raises(RuntimeError, match="out of memory"):
        batcher.submit("bad")
    assert batcher.submit("good") == "good"
    batcher.close()


def test_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    batcher = MicroBatcher(lambda payloads: [], batch_max=2)
    with pytest.raises(RuntimeError, match="returned 0 results for 1 jobs"):
        batcher.submit("x")
    batcher.close()


def test_closed_batcher_refuses_new_jobs() -> None:
    batcher = MicroBatcher(list, batch_max=2)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("x")


def test_batch_max_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_max must be >= 1, got 0"):
        MicroBatcher(list, batch_max=0)
