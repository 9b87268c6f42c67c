"""Attacks from other sites: credentialed CORS, cross-site WebSocket, DNS rebinding.

A page on evil.example must not read API answers with the visitor's cookies,
open the chat socket as the visitor, or reach the server through a rebinding
host name. Same-origin use (the chat page, curl) keeps working, and an origin
listed in ALLOWED_ORIGINS is let in.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from core.config import Settings
from tests.security.conftest import assert_alive, open_socket
from web.origins import OriginPolicy

pytestmark = pytest.mark.e2e

EVIL = "http://evil.example"
FRIEND = "https://friend.example"


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server(ALLOWED_ORIGINS=FRIEND)


async def socket_accepted(url: str, headers: dict[str, str]) -> bool:
    sio = await open_socket(url, str(uuid.uuid4()), headers)
    if sio is None:
        return False
    await sio.disconnect()
    return True


def test_foreign_origin_gets_no_credentialed_cors(server):
    preflight = httpx.options(
        f"{server.url}/v1/analyze",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    simple = httpx.get(
        f"{server.url}/health", headers={"Origin": EVIL, "Cookie": "access_token=x"}
    )
    for response in (preflight, simple):
        assert response.headers.get("access-control-allow-origin") != EVIL
        assert response.headers.get("access-control-allow-origin") != "*"
    assert preflight.status_code == 400
    assert_alive(server)


def test_allowed_origin_gets_cors(server):
    preflight = httpx.options(
        f"{server.url}/v1/analyze",
        headers={"Origin": FRIEND, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == FRIEND


async def test_foreign_origin_socket_is_refused(server):
    assert not await socket_accepted(server.url, {"Origin": EVIL})
    assert "origin http://evil.example is not this server" in server.log()
    assert_alive(server)


@pytest.mark.parametrize(
    "origin",
    [
        None,  # case: no Origin (not a browser: curl, python clients)
        "self",  # case: the chat page itself
        FRIEND,  # case: listed in ALLOWED_ORIGINS
    ],
)
async def test_same_and_allowed_origin_sockets_connect(server, origin):
    headers = (
        {} if origin is None else {"Origin": server.url if origin == "self" else origin}
    )
    assert await socket_accepted(server.url, headers)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # case: DNS rebinding name
        "evil.example:8010",  # case: with a port
        "localhost.evil.example",  # case: suffix trick
    ],
)
def test_foreign_host_header_is_refused(server, host):
    response = httpx.get(f"{server.url}/health", headers={"Host": host})
    assert response.status_code == 400
    assert "model_state" not in response.text
    assert_alive(server)


async def test_foreign_host_socket_is_refused(server):
    assert not await socket_accepted(server.url, {"Host": "evil.example"})


def test_loopback_hosts_are_served(server):
    port = server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        response = httpx.get(f"{server.url}/health", headers={"Host": host})
        assert response.status_code == 200, host


@pytest.mark.parametrize(
    ("origin", "host", "refused"),
    [
        ("http://127.0.0.1:8010", "127.0.0.1:8010", False),  # case: same origin
        ("https://chat.example", "chat.example", False),  # case: behind TLS proxy
        ("http://127.0.0.1:9999", "127.0.0.1:8010", True),  # case: other port
        (EVIL, "127.0.0.1:8010", True),  # case: other site
        ("null", "127.0.0.1:8010", True),  # case: sandboxed iframe / file://
    ],
)
def test_socket_origin_policy(origin, host, refused):
    policy = OriginPolicy(allowed_origins=(), allowed_hosts=("*",))
    environ = {"HTTP_ORIGIN": origin, "HTTP_HOST": host}
    assert (policy.socket_refusal(environ) is not None) is refused


@pytest.mark.parametrize(
    "value",
    ["*", "https://a.example/path", "a.example"],  # wildcard, path, no scheme
)
def test_allowed_origins_must_be_exact_origins(value):
    with pytest.raises(ValueError, match="ALLOWED_ORIGINS"):
        Settings.from_env({"ALLOWED_ORIGINS": value})
