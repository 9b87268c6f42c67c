"""Readiness that tells the truth: cached probes of the engines and the history.

``GET /ready`` answers 200 only while every loaded engine answers now (in
process: loaded and not failed; BACKEND=openai: ``GET /v1/models`` of
BACKEND_URL within READY_PROBE_TIMEOUT_S) and, with chat history on, the
database answers ``SELECT 1``. Each result is kept READY_PROBE_S seconds, and
a probe is never run twice at once: a load balancer polling every second costs
the engine one cheap request per READY_PROBE_S. ``GET /health`` shows the last
results without probing (liveness stays cheap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.errors import AppError
from core.security import redact

logger = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]  # returns when healthy, raises the reason


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome; ``checked_at`` is ``time.monotonic()`` seconds."""

    ok: bool
    error: str | None
    checked_at: float


class CachedProbe:
    """Runs ``check`` at most once per ``ttl_s`` and never twice at once.

    Callers that arrive while a probe runs wait for that same probe; a caller
    that gives up (its request cancelled) does not cancel it. A check that
    takes longer than ``timeout_s`` fails with that reason.
    """

    def __init__(
        self,
        check: Check,
        *,
        ttl_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.check = check
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.last: ProbeResult | None = None
        self.runs = 0  # probes started (tests count them)
        self._flight: asyncio.Future[ProbeResult] | None = None

    async def result(self) -> ProbeResult:
        """The cached result while fresh, else the result of a new probe."""
        last = self.last
        if last is not None and self.clock() - last.checked_at < self.ttl_s:
            return last
        if self._flight is None or self._flight.done():
            self.runs += 1
            self._flight = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._flight)

    async def _run(self) -> ProbeResult:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.check()
            result = ProbeResult(True, None, self.clock())
        except TimeoutError:
            reason = f"no answer within {self.timeout_s:g} s (READY_PROBE_TIMEOUT_S)"
            result = ProbeResult(False, reason, self.clock())
        except Exception as exc:  # any failure is the answer: recorded, shown
            result = ProbeResult(False, _reason(exc), self.clock())
        previous, self.last = self.last, result
        if previous is None or previous.ok != result.ok:
            log = logger.info if result.ok else logger.warning
            log("readiness probe: %s", "ok" if result.ok else result.error)
        return result

    def describe(self, name: str, now: float | None = None) -> dict[str, Any] | None:
        """``{"check", "ok", "error", "age_s"}`` of the last result (redacted)."""
        if self.last is None:
            return None
        now = self.clock() if now is None else now
        return {
            "check": redact(name),  # a local checkpoint path: its last part
            "ok": self.last.ok,
            "error": None if self.last.error is None else redact(self.last.error),
            "age_s": round(max(0.0, now - self.last.checked_at), 3),
        }


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AppError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Report:
    """What /ready learnt: ``failure`` (None when ready) and every check."""

    failure: str | None
    checks: list[dict[str, Any]]


class Readiness:
    """One cached probe per engine of ``engines`` and one for the history."""

    def __init__(self, engines: Any, settings: Settings) -> None:
        self.engines = engines
        self.settings = settings
        self._probes: dict[str, CachedProbe] = {}

    def _probe(self, name: str, check: Check) -> CachedProbe:
        probe = self._probes.get(name)
        if probe is None:
            probe = CachedProbe(
                check,
                ttl_s=self.settings.ready_probe_s,
                timeout_s=self.settings.ready_probe_timeout_s,
            )
            self._probes[name] = probe
        return probe

    async def check(self, history: Any = None) -> Report:
        """Probe (or reuse) every engine and, when ``history`` (a SQLAlchemy
        data layer) is given, the database. Only engines that are loaded, and
        the history, decide ``failure``: a loading or failed engine is
        /ready's own business, but its probe still runs (an answer wakes a
        remote engine's retry)."""
        timeout_s = self.settings.ready_probe_timeout_s
        named: list[tuple[str, CachedProbe, bool]] = []
        for model_id, engine in self.engines.engines():
            name = f"engine {model_id}"
            probe = self._probe(name, _engine_check(engine, timeout_s))
            named.append((name, probe, engine.status.state == "ready"))
        if history is not None:
            probe = self._probe("history", _history_check(history))
            named.append(("history", probe, True))
        results = await asyncio.gather(*(probe.result() for _, probe, _ in named))
        failure = None
        for (name, _, decides), result in zip(named, results, strict=True):
            if decides and not result.ok and failure is None:
                failure = f"{name}: {result.error}"
        return Report(failure, self.last())

    def last(self) -> list[dict[str, Any]]:
        """The last result of every probe run so far, without probing."""
        now = time.monotonic()
        found = (probe.describe(name, now) for name, probe in self._probes.items())
        return [item for item in found if item is not None]


def _engine_check(engine: Any, timeout_s: float) -> Check:
    async def check() -> None:
        await asyncio.to_thread(engine.probe, timeout_s)

    return check


def _history_check(data_layer: Any) -> Check:
    """``SELECT 1`` on the data layer's database (Chainlit's SQLAlchemy layer),
    and no history writes kept in memory (core.persist.outbox) unsaved."""
    from sqlalchemy import text

    async def check() -> None:
        async with data_layer.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        outbox = getattr(data_layer, "outbox", None)
        if outbox is not None and not outbox.saving:
            raise RuntimeError(
                f"{outbox.pending} chat history write(s) kept in memory since the "
                "database failed, not saved yet (retried every few seconds)"
            )

    return check
