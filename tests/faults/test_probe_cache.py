"""core.readiness: the probe cache, the engine probe and the history probe."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import core.engine.openai as openai_engine
from core.config import Settings
from core.engine.openai import OpenAIBackend
from core.errors import ModelUnavailableError
from core.readiness import CachedProbe, Readiness
from tests.support.openai_fake import FakeEngine, FakeEngineServer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_check(calls: list[int], *, fail: str | None = None, wait_s: float = 0):
    async def check() -> None:
        calls.append(1)
        await asyncio.sleep(wait_s)
        if fail is not None:
            raise ModelUnavailableError(fail)

    return check


async def test_a_result_is_reused_until_it_is_older_than_ttl():
    calls: list[int] = []
    clock = Clock()
    probe = CachedProbe(counting_check(calls), ttl_s=5, timeout_s=1, clock=clock)
    first = await probe.result()
    clock.now += 4.9
    assert await probe.result() is first
    assert len(calls) == 1
    clock.now += 0.2  # 5.1 s old: probed again
    second = await probe.result()
    assert second is not first and second.ok and len(calls) == 2
    assert probe.describe("engine", now=clock.now + 1.5)["age_s"] == 1.5


async def test_concurrent_callers_share_one_probe_in_flight():
    calls: list[int] = []
    probe = CachedProbe(counting_check(calls, wait_s=0.2), ttl_s=0, timeout_s=2)
    results = await asyncio.gather(*(probe.result() for _ in range(20)))
    assert len(calls) == 1 and probe.runs == 1
    assert all(result is results[0] for result in results)


async def test_a_cancelled_caller_does_not_cancel_the_shared_probe():
    calls: list[int] = []
    probe = CachedProbe(counting_check(calls, wait_s=0.2), ttl_s=10, timeout_s=2)
    impatient = asyncio.ensure_future(probe.result())
    await asyncio.sleep(0.05)
    impatient.cancel()
    result = await probe.result()  # joins the probe the cancelled caller began
    assert result.ok and len(calls) == 1


async def test_a_failure_is_kept_with_its_reason_and_redacted():
    calls: list[int] = []
    reason = "Cannot reach http://user:secret@10.0.0.5:8000 (/srv/models/x)"
    probe = CachedProbe(counting_check(calls, fail=reason), ttl_s=5, timeout_s=1)
    result = await probe.result()
    assert not result.ok and result.error == reason
    shown = probe.describe("engine /srv/models/paligemma")
    assert shown["ok"] is False
    assert "secret" not in shown["error"] and "/srv/models" not in shown["error"]
    assert "/srv/models" not in shown["check"]


async def test_a_probe_slower_than_its_timeout_fails_naming_the_setting():
    calls: list[int] = []
    probe = CachedProbe(counting_check(calls, wait_s=5), ttl_s=5, timeout_s=0.2)
    started = time.monotonic()
    result = await probe.result()
    assert time.monotonic() - started < 2
    assert not result.ok and "READY_PROBE_TIMEOUT_S" in result.error


def fake_registry(*engines):
    return SimpleNamespace(engines=lambda: list(engines))


def engine_in(state: str, error: str | None = None):
    def probe(timeout_s: float) -> None:
        if error:
            raise ModelUnavailableError(error)

    return SimpleNamespace(status=SimpleNamespace(state=state), probe=probe)


async def test_only_loaded_engines_and_the_history_decide_readiness(tmp_path: Path):
    from sqlalchemy.ext.asyncio import create_async_engine

    settings = Settings(ready_probe_s=0, data_dir=str(tmp_path))
    engines = fake_registry(
        ("default", engine_in("ready")),
        ("other", engine_in("failed", "refused: no memory")),  # /ready's business
    )
    readiness = Readiness(engines, settings)
    good = SimpleNamespace(
        engine=create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/h.db")
    )
    report = await readiness.check(good)
    assert report.failure is None
    assert {c["check"]: c["ok"] for c in report.checks} == {
        "engine default": True,
        "engine other": False,
        "history": True,
    }
    broken_url = f"sqlite+aiosqlite:///{tmp_path}/missing/folder/h.db"
    broken = SimpleNamespace(engine=create_async_engine(broken_url))
    readiness = Readiness(engines, settings)
    report = await readiness.check(broken)
    assert report.failure is not None and report.failure.startswith("history: ")
    await good.engine.dispose()
    await broken.engine.dispose()


@pytest.fixture
def fake_engine():
    with FakeEngineServer(FakeEngine(answer=lambda *_: "a car")) as running:
        yield running


def backend_for(url: str, tmp_path: Path) -> OpenAIBackend:
    settings = Settings(backend="openai", backend_url=url, data_dir=str(tmp_path))
    backend = OpenAIBackend(settings)
    backend.mask_decoder = object()  # the VAE plays no part in probing
    return backend


def test_the_remote_probe_asks_the_engine_every_time(fake_engine, tmp_path):
    backend = backend_for(fake_engine.url, tmp_path)
    backend.load()
    backend.probe(1.0)  # answers
    fake_engine.engine.models = ["another/model"]
    with pytest.raises(ModelUnavailableError, match="no longer serves"):
        backend.probe(1.0)
    fake_engine.__exit__(None, None, None)  # the engine dies
    with pytest.raises(ModelUnavailableError, match="Cannot reach"):
        backend.probe(1.0)
    backend.close()


def test_an_answering_probe_wakes_the_load_retry(monkeypatch, tmp_path):
    """Without the wake the retry would sleep its 30 s back-off."""
    monkeypatch.setattr(openai_engine, "RETRY_S", (30.0,))
    with FakeEngineServer(FakeEngine(answer=lambda *_: "x")) as probe_port:
        port = int(probe_port.url.rsplit(":", 1)[1])
    backend = backend_for(f"http://127.0.0.1:{port}", tmp_path)
    backend.start_background_load()
    assert not backend.wait_ready(1.0)  # the engine is down: first try failed
    with FakeEngineServer(FakeEngine(answer=lambda *_: "x"), port=port):
        backend.probe(1.0)  # answers: the retry runs now
        assert backend.wait_ready(3.0), backend.status
        backend.probe(1.0)
    backend.close()
