"""Who runs next: one line per client, clients served in turn, chat first.

Pure bookkeeping (no threads, no clocks): ``ModelQueue`` holds its lock
around every call. Two classes of work: ``chat`` (a person in the chat
waiting for an answer) and ``api`` (REST calls, batch items, scripts). Within
a class each client (a logged-in user, an API key, a client address) has its
own FIFO and clients take turns (round-robin), so one client with many
requests cannot starve the others. Chat goes first, but while API work waits
at most ``chat_run`` chat jobs run in a row, so a busy chat never starves the
API either.
"""

from __future__ import annotations

import copy
from collections import OrderedDict, deque
from typing import Protocol

CHAT = "chat"
API = "api"
KINDS = (CHAT, API)
CHAT_RUN = 4  # chat jobs in a row while API jobs wait


class Queued(Protocol):
    """What the line needs of a job."""

    client: str
    kind: str


class FairLine:
    """Waiting jobs: per class, per client deques served round-robin."""

    def __init__(self, chat_run: int = CHAT_RUN) -> None:
        if chat_run < 1:
            raise ValueError(f"chat_run must be >= 1, got {chat_run}")
        self.chat_run = chat_run
        self._lines: dict[str, OrderedDict[str, deque[Queued]]] = {
            kind: OrderedDict() for kind in KINDS
        }
        self._chat_streak = 0  # chat jobs popped in a row while API jobs waited

    def __len__(self) -> int:
        return sum(self.waiting(kind) for kind in KINDS)

    def push(self, job: Queued) -> None:
        """Add ``job`` at the end of its client's line (a new client's turn
        comes after every client already waiting)."""
        if job.kind not in KINDS:
            raise ValueError(f"job kind must be one of {KINDS}, got {job.kind!r}")
        self._lines[job.kind].setdefault(job.client, deque()).append(job)

    def pop(self) -> Queued | None:
        """The next job to run (None when nothing waits)."""
        kind = self._next_kind()
        if kind is None:
            return None
        if kind == CHAT and self._lines[API]:
            self._chat_streak += 1
        else:
            self._chat_streak = 0
        clients = self._lines[kind]
        client, jobs = next(iter(clients.items()))
        job = jobs.popleft()
        if jobs:
            clients.move_to_end(client)  # its next job waits for everyone else
        else:
            del clients[client]
        return job

    def _next_kind(self) -> str | None:
        chat, api = self._lines[CHAT], self._lines[API]
        if chat and (not api or self._chat_streak < self.chat_run):
            return CHAT
        if api:
            return API
        return None

    def remove(self, job: Queued) -> bool:
        """Take a waiting ``job`` out of the line; False when it is not there."""
        clients = self._lines.get(job.kind, {})
        jobs = clients.get(job.client)
        if jobs is None or not any(queued is job for queued in jobs):
            return False
        jobs.remove(job)
        if not jobs:
            del clients[job.client]
        return True

    def order(self) -> list[Queued]:
        """Every waiting job in the order ``pop`` would return them (if no new
        job arrived)."""
        twin = FairLine(self.chat_run)
        twin._lines = {
            kind: OrderedDict(
                (client, copy.copy(jobs)) for client, jobs in clients.items()
            )
            for kind, clients in self._lines.items()
        }
        twin._chat_streak = self._chat_streak
        ordered = []
        while (job := twin.pop()) is not None:
            ordered.append(job)
        return ordered

    def waiting(self, kind: str | None = None) -> int:
        """Jobs waiting, of one class or of all."""
        kinds = KINDS if kind is None else (kind,)
        return sum(len(jobs) for k in kinds for jobs in self._lines[k].values())

    def of_client(self, client: str) -> int:
        """Jobs ``client`` has waiting (any class)."""
        return sum(len(clients.get(client, ())) for clients in self._lines.values())
