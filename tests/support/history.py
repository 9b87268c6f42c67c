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


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on a loopback port; yields its DATABASE_URL.

    As root, the server runs as the ``postgres`` user (initdb refuses root), so
    its folder lives outside pytest's root-only tmp folder.
    """
    pg_bin = find_pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="pg-persist-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*as_user, *args], capture_output=True, text=True)
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}{done.stderr}"

    pg_ctl = [str(pg_bin / "pg_ctl"), "-D", str(data)]
    run(str(pg_bin / "initdb"), "-D", str(data), "-U", "app", "-A", "trust")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(*pg_ctl, "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        where = ["-h", "127.0.0.1", "-p", str(port), "-U", "app"]
        run(str(pg_bin / "createdb"), *where, "chat")
        yield f"postgresql://app@127.0.0.1:{port}/chat"
    finally:
        run(*pg_ctl, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


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
