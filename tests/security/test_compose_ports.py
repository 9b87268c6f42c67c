"""Every compose file and documented ``docker run`` publishes the app on
127.0.0.1 only, unless that service turns a login on (AUTH_USERS or API_KEY).

The image listens on 0.0.0.0 and has no login by default: ``"8010:8010"``
would hand the model and the chat to anyone who reaches the host.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = sorted(
    path
    for pattern in ("*compose*.yml", "*compose*.yaml")
    for path in ROOT.rglob(pattern)
    if not {".venv", "node_modules", ".git"} & set(path.relative_to(ROOT).parts)
)
LOGIN_SETTINGS = ("AUTH_USERS", "API_KEY")


def host_ip(port: Any) -> str:
    """The host address a compose ``ports`` entry binds ("" = every one)."""
    if isinstance(port, dict):  # long syntax
        return str(port.get("host_ip", ""))
    text = str(port).split("/")[0]  # "127.0.0.1:8010:8010/tcp"
    if text.startswith("["):  # "[::1]:8010:8010"
        return text[1 : text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else ""


def has_login(service: dict[str, Any]) -> bool:
    """AUTH_USERS or API_KEY set to a value in the service's own environment
    (a value from .env cannot be judged from here: it does not count)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return any(str(env.get(name) or "").strip() for name in LOGIN_SETTINGS)


def exposures(service: dict[str, Any]) -> list[str]:
    """What the service publishes beyond 127.0.0.1, as readable entries."""
    if service.get("network_mode") == "host":
        return ["network_mode: host"]
    loopback = ("127.0.0.1", "::1", "localhost")
    return [str(p) for p in service.get("ports") or [] if host_ip(p) not in loopback]


def test_the_compose_files_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in COMPOSE_FILES}
    assert {"docker-compose.yml", "deploy/compose.vllm.yml"} <= names


@pytest.mark.parametrize(
    "path", COMPOSE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_compose_publishes_on_loopback_unless_login_is_on(path):
    services = yaml.safe_load(path.read_text(encoding="utf-8"))["services"]
    open_ports = {
        name: exposures(service)
        for name, service in services.items()
        if exposures(service) and not has_login(service)
    }
    assert open_ports == {}, (
        f"{path.name} publishes without a login: bind to 127.0.0.1 "
        '("127.0.0.1:8010:8010") or set AUTH_USERS / API_KEY in the service'
    )


@pytest.mark.parametrize(
    ("port", "service", "open_"),
    [
        ("8010:8010", {}, True),  # every interface
        ("0.0.0.0:8010:8010", {}, True),
        (8010, {}, True),  # a random host port on every interface
        ("127.0.0.1:8010:8010", {}, False),
        ("[::1]:8010:8010/tcp", {}, False),
        ({"target": 8010, "published": 8010}, {}, True),
        ({"target": 8010, "host_ip": "127.0.0.1"}, {}, False),
        ("8010:8010", {"environment": {"AUTH_USERS": "a:pbkdf2$x"}}, False),
        ("8010:8010", {"environment": ["API_KEY=k"]}, False),
        ("8010:8010", {"environment": {"API_KEY": ""}}, True),  # empty: no login
    ],
)
def test_port_rules(port, service, open_):
    service = {"ports": [port], **service}
    assert bool(exposures(service) and not has_login(service)) is open_


DOCKER_RUN = re.compile(r"docker run[^\n]*(?:\\\n[^\n]*)*")


def test_documented_docker_run_publishes_on_loopback():
    """README and docs: a ``docker run -p`` people copy binds 127.0.0.1."""
    wide = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for command in DOCKER_RUN.findall(doc.read_text(encoding="utf-8")):
            login = any(f"{name}=" in command for name in LOGIN_SETTINGS)
            for port in re.findall(r"-p\s+(\S+)", command):
                if host_ip(port) != "127.0.0.1" and not login:
                    wide.append(f"{doc.name}: -p {port}")
    assert wide == []
