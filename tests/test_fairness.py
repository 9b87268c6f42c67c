from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.engine.fairness import API, CHAT, FairLine


@dataclass(eq=False)
class Job:
    client: str
    kind: str
    name: str


def _jobs(spec: str) -> list[Job]:
    """ "a1 a2 B1" -> jobs; lower case: api client, upper case: chat client."""
    return [
        Job(word[0].lower(), CHAT if word[0].isupper() else API, word)
        for word in spec.split()
    ]


@pytest.mark.parametrize(
    ("pushed", "popped"),
    [
        ("a1 a2 a3", "a1 a2 a3"),  # one client: FIFO
        ("a1 a2 a3 b1 b2 c1", "a1 b1 c1 a2 b2 a3"),  # clients take turns
        ("a1 a2 a3 a4 a5 b1", "a1 b1 a2 a3 a4 a5"),  # a flood does not starve b
        ("a1 A1 b1 B1", "A1 B1 a1 b1"),  # chat before api
        ("A1 A2 A3 A4 A5 A6 a1 a2", "A1 A2 A3 A4 a1 A5 A6 a2"),  # api gets a turn
        ("A1 B1 A2 B2", "A1 B1 A2 B2"),  # chat sessions take turns too
    ],
)
def test_pop_order(pushed, popped):
    line = FairLine(chat_run=4)
    jobs = _jobs(pushed)
    for job in jobs:
        line.push(job)
    predicted = [job.name for job in line.order()]
    order = []
    while (job := line.pop()) is not None:
        order.append(job.name)
    assert order == popped.split()
    assert predicted == order  # order() foretells pop()
    assert len(line) == 0


def test_a_client_that_comes_back_waits_its_turn():
    line = FairLine()
    a1, a2, b1, b2 = _jobs("a1 a2 b1 b2")
    for job in (a1, b1, b2):
        line.push(job)
    assert line.pop() is a1
    line.push(a2)  # a comes back after its turn: behind b
    assert [j.name for j in line.order()] == ["b1", "a2", "b2"]


def test_remove_takes_a_waiting_job_out_and_counts_follow():
    line = FairLine()
    a1, a2, b1, big_b = _jobs("a1 a2 b1 B1")
    for job in (a1, a2, b1, big_b):
        line.push(job)
    assert line.waiting(API) == 3 and line.waiting(CHAT) == 1
    assert line.of_client("a") == 2
    assert line.remove(a2) and not line.remove(a2)
    assert line.remove(big_b)
    assert line.of_client("a") == 1 and line.waiting(CHAT) == 0
    assert [j.name for j in line.order()] == ["a1", "b1"]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        FairLine().push(Job("a", "bulk", "x"))
