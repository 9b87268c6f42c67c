"""Slow clients are cut off (READ_TIMEOUT_S), over raw sockets to the real server.

A body sent at 1 byte/s to /v1/analyze, /v1/chat/completions or Chainlit's
/project/file gets 408 and a closed connection within the deadline, as do
headers sent at 1 byte/s; a silent connection is closed; meanwhile a normal
request is still answered. Without the deadlines all of them stay open.
"""

from __future__ import annotations

import select
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.e2e

READ_TIMEOUT_S = 2
CUT_WITHIN_S = 5.0  # the deadline plus scheduling slack on a busy machine
GIVE_UP_S = 15.0  # a trickle still open after this is a failure


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(
        recording={"caption en": "a car"}, READ_TIMEOUT_S=str(READ_TIMEOUT_S)
    )


def trickle(port: int, at_once: bytes, slowly: bytes) -> tuple[float, bytes]:
    """Send ``at_once``, then ``slowly`` at 1 byte/s, until the server answers
    or closes. Returns (seconds until then, what it sent back)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP_S)
    started = time.monotonic()
    try:
        sock.sendall(at_once)
        pending = slowly.ljust(int(GIVE_UP_S) + 1, b"x") if slowly else b""
        for _ in range(int(GIVE_UP_S) + 1):
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable:
                return time.monotonic() - started, _read_all(sock)
            if pending:
                sock.send(pending[:1])
                pending = pending[1:]
    except (BrokenPipeError, ConnectionResetError):
        return time.monotonic() - started, b""
    finally:
        sock.close()
    return time.monotonic() - started, b"(still open)"


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def head(method: str, path: str, port: int, **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def slow_bodies(port: int) -> dict[str, tuple[bytes, bytes]]:
    """Each route's headers (sent at once) and a 200-byte body (sent slowly)."""
    boundary = "b0undary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
            'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        )
        .encode()
        .ljust(200, b"x")
    )
    chat = b'{"model": "x", "messages": [' + b" " * 172
    multipart = f"multipart/form-data; boundary={boundary}"
    session = uuid.uuid4()
    return {
        "/v1/analyze": (
            head("POST", "/v1/analyze", port, Content_Type=multipart,
                 Content_Length="200"),
            form,
        ),
        "/v1/chat/completions": (
            head("POST", "/v1/chat/completions", port,
                 Content_Type="application/json", Content_Length=str(len(chat))),
            chat,
        ),
        "/project/file": (
            head("POST", f"/project/file?session_id={session}", port,
                 Content_Type=multipart, Content_Length="200"),
            form.replace(b'name="images"', b'name="file"'),
        ),
    }  # fmt: skip


def test_slow_bodies_and_headers_are_cut_off_and_others_still_served(server):
    port = server.port
    cases = {
        **slow_bodies(port),
        "headers": (b"", head("GET", "/health", port)),
        "silent": (b"", b""),  # connects, never sends a byte
    }
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {
            name: pool.submit(trickle, port, at_once, slowly)
            for name, (at_once, slowly) in cases.items()
        }
        time.sleep(1.0)
        answered = httpx.get(f"{server.url}/health", timeout=5)  # meanwhile
        results = {name: future.result() for name, future in futures.items()}
    assert answered.status_code == 200
    problems = [
        f"{name}: {problem}"
        for name, (seconds, reply) in results.items()
        if (problem := _problem(name, seconds, reply))
    ]
    assert not problems, "\n".join(problems)


def _problem(name: str, seconds: float, reply: bytes) -> str | None:
    """What is wrong with how the server treated one slow client, if anything."""
    if seconds >= CUT_WITHIN_S:
        return f"still open after {seconds:.1f} s, got {reply[:80]!r}"
    if seconds < READ_TIMEOUT_S - 0.5:
        return f"cut after {seconds:.1f} s, before the deadline: {reply[:200]!r}"
    if name == "silent":  # a connection that never sent a byte is just closed
        return None if reply == b"" else f"expected a bare close, got {reply!r}"
    if not reply.startswith(b"HTTP/1.1 408 ") or b"connection: close" not in reply:
        return f"expected 408 and connection: close, got {reply[:300]!r}"
    return None if b"READ_TIMEOUT_S" in reply else f"no fix named: {reply!r}"
