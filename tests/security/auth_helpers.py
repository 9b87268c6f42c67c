"""What the tests/security/test_auth_* modules share: a replay-model server on
loopback, logins, and a chat client that sends a cookie or a client address."""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient, ServerProcess, start_server


def replay_env(folder: Path, synthetic_vae_path: Path, **extra: str) -> dict[str, str]:
    """Server settings: the replay model (fast, exact answers), data in ``folder``."""
    recording = folder / "recording.json"
    recording.write_text(json.dumps(REPLAY_RECORDING))
    return {
        "MODEL_ID": f"replay:{recording}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(folder / "data"),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def run_server(env: dict[str, str], log: Path) -> ServerProcess:
    server = start_server(env, log)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def replay_server(
    tmp_path_factory: Any, synthetic_vae_path: Path, name: str, **extra: str
) -> Iterator[ServerProcess]:
    """A ready replay-model server with ``extra`` settings, data in a fresh
    ``name`` folder; stopped on exit (the fixtures' one server factory)."""
    folder = tmp_path_factory.mktemp(name)
    env = replay_env(folder, synthetic_vae_path, **extra)
    process = run_server(env, folder / "server.log")
    try:
        yield process
    finally:
        process.stop()


def login(url: str, name: str, password: str, address: str | None = None):
    """POST /login; ``address`` is sent as X-Forwarded-For, which the server
    believes only with FORWARDED_ALLOW_IPS=127.0.0.1 (a proxy on this machine)."""
    headers = {"X-Forwarded-For": address} if address else None
    return httpx.post(
        f"{url}/login",
        data={"username": name, "password": password},
        headers=headers,
        timeout=60,
    )


def png(color: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return buffer.getvalue()


class TabClient(ChatClient):
    """A browser tab: optional login cookie and client address (X-Forwarded-For)."""

    connect_timeout_s = 60.0

    def __init__(
        self, url: str, token: str | None = None, address: str | None = None
    ) -> None:
        super().__init__(url, session_id=str(uuid.uuid4()))
        self.headers: dict[str, str] = {}
        self.cookies = {"access_token": token} if token else {}
        if token:
            self.headers["Cookie"] = f"access_token={token}"
        if address:
            self.headers["X-Forwarded-For"] = address

    def socket_headers(self) -> dict[str, str]:
        return self.headers

    def http_options(self) -> dict[str, Any]:
        return {"headers": self.http_headers, "cookies": self.cookies}

    @property
    def http_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k != "Cookie"}

    def outputs(self) -> list[str]:
        return [m.get("output", "") for m in self.assistant_messages()]
