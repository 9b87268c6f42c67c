"""Attack suite fixtures: the real server (`chainlit run`) on loopback.

``secure_server(request, **env)`` starts one server per test module with the
replay model (answers from a recording, real VAE decoding) and registers its
stop; ``attack_root`` is the folder around the server's data, where canaries
that must survive are planted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import socketio

from tests.support.chat_client import ServerProcess, start_server

RECORDING = {
    "segment cat": "<loc0100><loc0100><loc0800><loc0600> cat",
    "caption en": "A cat ![beacon](http://127.0.0.1:9/beacon.png) see "
    "[click](https://evil.example/phish) or https://evil.example/x www.evil.example "
    "and mail me@evil.example <http://evil.example/auto>",
    "ocr": "<img src=x onerror=alert(1)> `code` **bold**",
}


@pytest.fixture(scope="module")
def attack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("attack")


@pytest.fixture(scope="module")
def secure_server(
    attack_root: Path, synthetic_vae_path: Path
) -> Callable[..., ServerProcess]:
    """Factory: start (once per env) the real server; stopped after the module."""
    servers: dict[str, ServerProcess] = {}

    def start(_ready: str = "yes", **env: str) -> ServerProcess:
        """``_ready="no"``: the model is expected to fail; wait for /health only."""
        key = json.dumps(env, sort_keys=True)
        if key in servers:
            return servers[key]
        folder = attack_root / f"server{len(servers)}"
        folder.mkdir()
        recording = folder / "recording.json"
        recording.write_text(json.dumps(RECORDING), encoding="utf-8")
        full_env = {
            "MODEL_ID": f"replay:{recording}",
            "VAE_PATH": str(synthetic_vae_path),
            "DATA_DIR": str(folder / "data"),
            "HF_HUB_OFFLINE": "1",
            "PERSIST": "off",
            **env,
        }
        server = start_server(full_env, folder / "server.log")
        servers[key] = server
        if _ready == "yes":
            server.wait_ready()
        else:
            wait_failed(server)
        return server

    yield start
    for server in servers.values():
        server.stop()


def wait_failed(server: ServerProcess, timeout_s: float = 60) -> None:
    """Poll /health until the model state is "failed" (it was meant to fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/health").json().get("model_state") == "failed":
            return
        time.sleep(0.3)
    raise TimeoutError(f"model did not fail in {timeout_s} s:\n{server.log()[-3000:]}")


def files_root(server: ServerProcess) -> Path:
    """Chainlit's FILES_DIRECTORY of this server (APP_ROOT/.files)."""
    return server.log_path.parent / "app-root" / ".files"


def assert_alive(server: ServerProcess) -> None:
    assert server.process.poll() is None, server.log()[-3000:]
    response = httpx.get(f"{server.url}/health", timeout=10)
    assert response.status_code == 200, response.text


async def open_socket(
    url: str, session_id: str, headers: dict[str, str] | None = None
) -> socketio.AsyncClient | None:
    """A connected Chainlit socket, or None when the server refused it."""
    sio = socketio.AsyncClient()
    try:
        await sio.connect(
            url,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers=headers or {},
            auth={"sessionId": session_id, "clientType": "webapp"},
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        if sio.eio.http is not None:  # the refused handshake's HTTP session
            await sio.eio.http.close()
        return None
    return sio
