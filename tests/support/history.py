"""Persisted-history helpers shared by end-to-end tests: a logged-in tab that
can resume a thread, and a throwaway PostgreSQL server where its binaries are
installed (scripts/run_tests.sh installs them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chat_client import ChatClient, free_port


class AuthChatClient(ChatClient):
    """A logged-in tab: sends the login cookie; can resume a thread."""

    def __init__(self, url: str, token: str, thread_id: str | None = None) -> None:
        super().__init__(url, thread_id=thread_id or str(uuid.uuid4()))
        self.token = token
        self.resumed: dict[str, Any] | None = None
        self.resume_error: str | None = None

        @self.sio.on("resume_thread")
        async def _resume(thread: dict[str, Any]) -> None:
            self.resumed = thread
            self._changed.set()

        @self.sio.on("resume_thread_error")
        async def _resume_error(error: str) -> None:
            self.resume_error = error
            self._changed.set()

    def socket_headers(self) -> dict[str, str]:
        return {"Cookie": f"access_token={self.token}"}

    def http_options(self) -> dict[str, Any]:
        return {"cookies": {"access_token": self.token}}

    async def connect(self, resume: bool = False) -> None:
        await self._open()
        if resume:
            await self.wait_for(
                lambda: self.resumed is not None or self.resume_error, timeout_s=30
            )
            assert self.resume_error is None, self.resume_error
        await self.wait_for(lambda: self.tasks_ended >= 2, timeout_s=30)


def find_pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (initdb, pg_ctl)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


class PgServer:
    """A throwaway PostgreSQL server's controls: stop and start it (the data
    stays), freeze and thaw its processes (SIGSTOP/SIGCONT: a hung server)."""

    def __init__(self, pg_bin: Path, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.data = folder / "data"
        self.url = f"postgresql://app@127.0.0.1:{port}/chat"
        self._pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(self.data)]
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, text=True)
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}{done.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        options += " -c fsync=off"
        log = str(self.folder / "server.log")
        self.run(*self._pg_ctl, "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run(*self._pg_ctl, "-m", mode, "-w", "stop")

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def signal(self, signal_number: int) -> None:
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)


@contextlib.contextmanager
def postgres_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL on a loopback port, with its controls.

    As root, the server runs as the ``postgres`` user (initdb refuses root), so
    its folder lives outside pytest's root-only tmp folder.
    """
    pg_bin = find_pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="pg-persist-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    server = PgServer(pg_bin, folder, free_port())
    initdb = str(pg_bin / "initdb")
    server.run(initdb, "-D", str(server.data), "-U", "app", "-A", "trust")
    server.start()
    try:
        where = ["-h", "127.0.0.1", "-p", str(server.port), "-U", "app"]
        server.run(str(pg_bin / "createdb"), *where, "chat")
        yield server
    finally:
        with contextlib.suppress(AssertionError):  # already stopped
            server.signal(18)  # SIGCONT: a frozen server cannot stop
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on a loopback port; yields its DATABASE_URL."""
    with postgres_server() as server:
        yield server.url


@contextlib.contextmanager
def history_database(kind: str) -> Iterator[str]:
    """DATABASE_URL for ``kind``: "" (the default SQLite file in DATA_DIR) for
    "sqlite", a throwaway server's URL for "postgresql" (the test is skipped
    where PostgreSQL's server binaries are not installed)."""
    if kind == "sqlite":
        yield ""
        return
    if find_pg_bin() is None:
        pytest.skip(
            "PostgreSQL server binaries not installed (apt-get install postgresql; "
            "scripts/run_tests.sh does it as root)"
        )
    with postgres_cluster() as url:
        yield url
