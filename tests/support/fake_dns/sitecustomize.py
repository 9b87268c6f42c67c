"""A fake DNS resolver for a test server process (SSRF tests).

Put this folder on PYTHONPATH and set FAKE_DNS="name=ip+ip,name2=ip" in the
environment of a child process: Python imports ``sitecustomize`` at start, and
``socket.getaddrinfo`` then answers those names with those addresses; names
ending in ``.invalid`` fail to resolve; every other name resolves as usual.
The app's own address checks run unchanged on what this returns.
"""

from __future__ import annotations

import os
import socket

_real_getaddrinfo = socket.getaddrinfo


def _parse(spec: str) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        name, _, addresses = entry.partition("=")
        table[name.strip().lower()] = [a.strip() for a in addresses.split("+")]
    return table


_TABLE = _parse(os.environ.get("FAKE_DNS", ""))


def _fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    name = host.decode() if isinstance(host, bytes) else str(host or "")
    name = name.lower().rstrip(".")
    if name.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if name not in _TABLE:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    answers = []
    for address in _TABLE[name]:
        inet = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (
            (address, int(port or 0), 0, 0)
            if inet == socket.AF_INET6
            else (
                address,
                int(port or 0),
            )
        )
        answers.append((inet, type or socket.SOCK_STREAM, proto or 6, "", sockaddr))
    return answers


if _TABLE:
    socket.getaddrinfo = _fake_getaddrinfo
