"""Drive the real Chainlit server over its socket, as the web page does.

Used by the end-to-end tests; speaks Chainlit 2.12's socket.io protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A `chainlit run chainlit_app.py` child process on a loopback port."""

    port: int
    process: subprocess.Popen
    log_path: Path
    folder: Path | None = None  # set by the app_server fixture
    data_dir: Path | None = None  # the server's DATA_DIR (app_server)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Poll GET /ready until it answers 200 {"status": "ready"} (model + VAE).

        The JSON check matters: Chainlit's catch-all answers unknown GETs with
        200 and its HTML page.
        """
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = httpx.get(f"{self.url}/ready", timeout=5)
                last = f"{response.status_code} {response.text[:300]}"
                body = response.json() if response.status_code == 200 else None
                if isinstance(body, dict) and body.get("status") == "ready":
                    return
            time.sleep(0.3)
        raise TimeoutError(
            f"/ready did not answer 200 in {timeout_s} s (last: {last}); log tail:\n"
            f"{self.log()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


APP_FILES = (".chainlit", "chainlit.md", "public")  # what Chainlit reads in APP_ROOT


def isolated_app_root(repo: Path, folder: Path) -> Path:
    """A Chainlit APP_ROOT of its own for one test server (CHAINLIT_APP_ROOT).

    It links to the repo's config, welcome page and assets, and gets a private
    ``.files/``: Chainlit deletes APP_ROOT/.files on shutdown, so servers that
    share the repo's (other test modules, a dev server) delete each other's
    uploads mid-test (upload 500, FileNotFoundError in upload_file).
    """
    root = folder / "app-root"
    root.mkdir(parents=True, exist_ok=True)
    for name in APP_FILES:
        if (repo / name).exists() and not (root / name).exists():
            (root / name).symlink_to(repo / name)
    return root


def start_server(
    env: dict[str, str], log_path: Path, timeout_s: float = 120
) -> ServerProcess:
    """Start the app and wait until /health answers (the model may still load)."""
    port = free_port()
    app_root = isolated_app_root(ROOT, log_path.parent)
    full_env = {
        **os.environ,
        "LOAD_ON_START": "true",
        "CHAINLIT_APP_ROOT": str(app_root),
        **env,
        "PORT": str(port),
    }
    chainlit = Path(sys.executable).with_name("chainlit")
    handle = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(chainlit),
            "run",
            "chainlit_app.py",
            "--headless",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=full_env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    server = ServerProcess(port, process, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        f"server did not answer in {timeout_s} s:\n{server.log()[-4000:]}"
    )


@dataclass
class ChatClient:
    """One browser tab's worth of chat: a socket session plus its uploads."""

    url: str
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    thread_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    messages: list[dict[str, Any]] = field(default_factory=list)
    elements: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # buttons shown
    steps: list[dict[str, Any]] = field(default_factory=list)
    tasks_ended: int = 0
    # (perf_counter at arrival, step) for every new message or step: latency.
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    streams: dict[str, list[str]] = field(default_factory=dict)  # id -> pieces
    connect_timeout_s: ClassVar[float] = 30.0  # until on_chat_start has run

    def __post_init__(self) -> None:
        self.sio = socketio.AsyncClient()
        self._changed = asyncio.Event()

        @self.sio.on("new_message")
        async def _new_message(step: dict[str, Any]) -> None:
            self.arrivals.append((time.perf_counter(), step))
            self.messages.append(step)
            self._changed.set()

        @self.sio.on("update_message")
        async def _update_message(step: dict[str, Any]) -> None:
            for i, known in enumerate(self.messages):
                if known["id"] == step["id"]:
                    self.messages[i] = step
            self.steps.append(step)
            self._changed.set()

        @self.sio.on("stream_start")
        async def _stream_start(step: dict[str, Any]) -> None:
            self.streams[step["id"]] = [step.get("output", "")]
            self._changed.set()

        @self.sio.on("stream_token")
        async def _stream_token(token: dict[str, Any]) -> None:
            self.streams.setdefault(token["id"], []).append(token["token"])
            self._changed.set()

        @self.sio.on("element")
        async def _element(element: dict[str, Any]) -> None:
            self.elements.append(element)
            self._changed.set()

        @self.sio.on("action")
        async def _action(action: dict[str, Any]) -> None:
            self.actions.append(action)
            self._changed.set()

        @self.sio.on("remove_action")
        async def _remove_action(action: dict[str, Any]) -> None:
            self.actions = [a for a in self.actions if a["id"] != action["id"]]
            self._changed.set()

        @self.sio.on("task_end")
        async def _task_end(_: Any = None) -> None:
            self.tasks_ended += 1
            self._changed.set()

    def socket_headers(self) -> dict[str, str]:
        """Headers of the socket's handshake (a subclass adds a login cookie)."""
        return {}

    def http_options(self) -> dict[str, Any]:
        """Extra ``httpx.AsyncClient`` arguments for uploads (cookies, headers)."""
        return {}

    async def _open(self) -> None:
        """Open the socket for this session id and say the connection is up."""
        await self.sio.connect(
            self.url,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers=self.socket_headers(),
            auth={
                "sessionId": self.session_id,
                "clientType": "webapp",
                "threadId": self.thread_id,
            },
        )
        await self.sio.emit("connection_successful")

    async def connect(self) -> None:
        await self._open()
        # One task_end for the connection, one when on_chat_start has run:
        # only then does the server know the session (uploads 404 before).
        await self.wait_for(lambda: self.tasks_ended >= 2, self.connect_timeout_s)

    async def close(self) -> None:
        await self.sio.disconnect()

    async def reconnect(self) -> None:
        """Drop the socket and come back with the same session id, as the
        browser does after a network blip (Chainlit restores the session)."""
        ended = self.tasks_ended
        await self.sio.disconnect()
        await self._open()
        await self.wait_for(lambda: self.tasks_ended > ended, timeout_s=30)

    async def upload(self, name: str, data: bytes, mime: str = "image/png") -> str:
        async with httpx.AsyncClient(base_url=self.url, **self.http_options()) as http:
            response = await http.post(
                "/project/file",
                params={"session_id": self.session_id},
                files={"file": (name, data, mime)},
            )
        response.raise_for_status()
        return response.json()["id"]

    def assistant_messages(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == "assistant_message"]

    async def send(
        self, text: str, files: list[tuple] = (), *, timeout_s: float = 120
    ) -> list[dict[str, Any]]:
        """Send text (and uploads); return the assistant messages it produced."""
        refs = [
            {"id": await self.upload(*file)} for file in files
        ]  # (name, data[, mime])
        before = len(self.assistant_messages())
        tasks_before = self.tasks_ended
        message = {
            "id": str(uuid.uuid4()),
            "threadId": self.thread_id,
            "name": "User",
            "type": "user_message",
            "output": text,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        await self.sio.emit(
            "client_message", {"message": message, "fileReferences": refs}
        )
        await self.wait_for(lambda: self.tasks_ended > tasks_before, timeout_s)
        return self.assistant_messages()[before:]

    async def click_for_replies(
        self, action: dict[str, Any], *, timeout_s: float = 120
    ) -> list[dict[str, Any]]:
        """Click an action button as the browser does (POST /project/action);
        return the assistant messages it produced."""
        before = len(self.assistant_messages())
        async with httpx.AsyncClient(
            base_url=self.url, timeout=timeout_s, **self.http_options()
        ) as http:
            response = await http.post(
                "/project/action",
                json={"sessionId": self.session_id, "action": action},
            )
        response.raise_for_status()
        await self.wait_for(lambda: len(self.assistant_messages()) > before, 30)
        return self.assistant_messages()[before:]

    async def wait_for(
        self, predicate, timeout_s: float = 30, quiet: bool = False
    ) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait(), deadline - time.monotonic()
                )
        if quiet:
            return False
        raise TimeoutError("condition not met in time")

    def elements_for(self, message_id: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if e.get("forId") == message_id]

    def actions_for(
        self, message_id: str, name: str | None = None
    ) -> list[dict[str, Any]]:
        """The buttons (Chainlit actions) shown under a message (of one
        callback ``name`` when given)."""
        return [
            a
            for a in self.actions
            if a.get("forId") == message_id and name in (None, a.get("name"))
        ]

    def downloads_for(self, message_id: str) -> list[dict[str, Any]]:
        """The download buttons under a message (chat.downloads)."""
        return self.actions_for(message_id, "download")

    def suggestions_for(self, message_id: str) -> list[dict[str, Any]]:
        """The follow-up suggestion buttons under a message (chat.suggestions)."""
        return self.actions_for(message_id, "follow_up")

    async def click(self, action: dict[str, Any], timeout_s: float = 60) -> dict:
        """Click a button as the web page does (POST /project/action); the
        server's JSON answer, once the callback has run."""
        async with httpx.AsyncClient(base_url=self.url, **self.http_options()) as http:
            response = await http.post(
                "/project/action",
                json={"sessionId": self.session_id, "action": action},
                timeout=timeout_s,
            )
        response.raise_for_status()
        return response.json()

    async def download_file(
        self, message_id: str, label: str, timeout_s: float = 60
    ) -> tuple[str, bytes]:
        """Click the download button ``label`` under a message; the name and
        bytes of the file it attaches to that message."""
        (button,) = [a for a in self.downloads_for(message_id) if a["label"] == label]
        before = {e["id"] for e in self.elements_for(message_id)}
        await self.click(button, timeout_s)
        await self.wait_for(
            lambda: any(e["id"] not in before for e in self.elements_for(message_id)),
            timeout_s,
        )
        (element,) = [e for e in self.elements_for(message_id) if e["id"] not in before]
        return element["name"], self.download(element)

    def step_outputs(self, name: str) -> list[str]:
        """Every output the step called ``name`` showed, updates included."""
        return [s.get("output", "") for s in self.steps if s.get("name") == name]

    def download(self, element: dict[str, Any]) -> bytes:
        """The bytes of a file element sent to this session."""
        response = httpx.get(
            f"{self.url}/project/file/{element['chainlitKey']}",
            params={"session_id": self.session_id},
            timeout=60,
        )
        response.raise_for_status()
        return response.content
