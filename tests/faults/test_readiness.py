"""/ready tells the truth about a remote engine (BACKEND=openai), over HTTP.

The real server against a stand-in vLLM: /ready is 503 while the engine is
down, 200 within seconds of it answering (not after the 30 s retry back-off),
503 within seconds of it dying, and 200 again once it is back on its port.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.chat_client import free_port
from tests.support.openai_fake import FakeEngine, FakeEngineServer

pytestmark = pytest.mark.e2e

MODEL = "google/paligemma2-3b-mix-448"
SETTLE_S = 5.0  # READY_PROBE_S 0.5 + READY_PROBE_TIMEOUT_S 1 + polling slack
UP_S = 10.0  # the first load after the engine returns (VAE included); < 48 - 20
PORT = free_port()  # the stand-in engine's, the same on every restart


def engine() -> FakeEngineServer:
    return FakeEngineServer(FakeEngine(answer=lambda *_: "a car"), port=PORT)


def wait_ready_is(url: str, status: int, within_s: float) -> httpx.Response:
    """Poll /ready until it answers ``status``; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        response = httpx.get(f"{url}/ready", timeout=5)
        if response.status_code == status:
            return response
        assert time.monotonic() < deadline, (
            f"/ready still {response.status_code} after {within_s} s: {response.text}"
        )
        time.sleep(0.2)


def test_ready_follows_the_engine_down_up_down_up(app_server):
    server = app_server(
        ready=False,
        BACKEND="openai",
        BACKEND_URL=f"http://127.0.0.1:{PORT}",
        MODEL_ID=MODEL,
        READY_PROBE_S="0.5",
        READY_PROBE_TIMEOUT_S="1",
    )
    down = wait_ready_is(server.url, 503, SETTLE_S)
    assert "Cannot reach the inference engine" in down.json()["error"]["message"]
    # The load is tried at 0, 1, 3, 8, 18 and 48 s: from 20 s on, only a probe
    # that wakes the retry can make /ready 200 within UP_S of the engine's return.
    time.sleep(20)

    with engine():
        up = wait_ready_is(server.url, 200, UP_S)
        checks = {c["check"]: c for c in up.json()["checks"]}
        assert checks[f"engine {MODEL}"]["ok"] is True
        assert checks[f"engine {MODEL}"]["age_s"] < 1.0
    # the engine has died
    died = wait_ready_is(server.url, 503, SETTLE_S)
    body = died.json()
    assert "Cannot reach the inference engine" in body["error"]["message"]
    assert body["checks"][0]["ok"] is False and body["checks"][0]["error"]
    health = httpx.get(f"{server.url}/health", timeout=5)
    assert health.status_code == 200  # liveness: the process is fine
    assert health.json()["checks"][0]["ok"] is False  # the last probe, shown

    with engine():  # back on the same port
        wait_ready_is(server.url, 200, SETTLE_S)


def test_ready_checks_the_history_database_when_history_is_on(app_server):
    """With AUTH_USERS (history on) /ready also asks the database (SELECT 1)."""
    from core.persist.auth import hash_password

    server = app_server(
        recording={"caption en": "a car"},
        AUTH_USERS=f"alice:{hash_password('correct horse battery')}",
    )
    body = httpx.get(f"{server.url}/ready", timeout=5).json()
    checks = {c["check"]: c for c in body["checks"]}
    assert checks["history"] == {**checks["history"], "ok": True, "error": None}
