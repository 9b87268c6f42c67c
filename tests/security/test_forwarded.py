"""X-Forwarded-For does not pick the rate-limit, queue or login-throttle key.

Anyone can send the header. uvicorn rewrites the client address from it when
the peer is in its FORWARDED_ALLOW_IPS, which defaults to 127.0.0.1: before the
fix, a client on the same machine (or behind any local proxy that forwards the
header as it came) got a fresh rate limit per made-up address. Now the app
trusts the header only from the proxies FORWARDED_ALLOW_IPS names (empty by
default), over the real server on loopback. Another peer address is played by
binding the client to 127.0.0.2 (all of 127.0.0.0/8 is this machine).
"""

from __future__ import annotations

import httpx
import pytest

from core.config import Settings
from core.persist.auth import hash_password
from core.security.clients import client_address
from tests.security.auth_helpers import TabClient, login, png, replay_server

LIMIT = 3
FORGED = [f"198.51.100.{n}" for n in range(1, 7)]  # six made-up client addresses
LIMITED = "Too many requests"
CLIENT = "203.0.113.9"  # what the proxy saw
NET = ("10.0.0.0/8",)  # the proxies


def _scope(peer, *forwarded: str) -> dict:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": peer, "headers": [(b"host", b"x"), *headers]}


@pytest.mark.parametrize(
    ("scope", "trusted", "expected"),
    [
        (_scope(("127.0.0.1", 5000), CLIENT), (), "127.0.0.1"),  # default
        (_scope(("10.0.0.5", 1), CLIENT), ("127.0.0.1",), "10.0.0.5"),  # other
        (_scope(("127.0.0.1", 1), CLIENT), ("127.0.0.1",), CLIENT),
        (_scope(("127.0.0.1", 1)), ("127.0.0.1",), "127.0.0.1"),  # no header
        # the client's own forged entries sit left of what the proxy appended
        (_scope(("10.1.2.3", 1), "6.6.6.6, " + CLIENT), NET, CLIENT),
        # two proxies of the list: the rightmost address that is not one of them
        (_scope(("10.0.0.1", 1), CLIENT + ", 10.0.0.2"), NET, CLIENT),
        (
            _scope(("10.0.0.1", 1), "a", CLIENT + ":4431"),
            ("10.0.0.1",),
            CLIENT,
        ),
        (_scope(("127.0.0.1", 1), "not-an-ip"), ("127.0.0.1",), "127.0.0.1"),
        (_scope(("::1", 1), "[2001:db8::7]:80"), ("::1",), "2001:db8::7"),
        (_scope(None, CLIENT), ("127.0.0.1",), "unknown"),  # no peer
    ],
)
def test_client_address(scope, trusted, expected):
    assert client_address(scope, trusted) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),  # the default: no proxy is trusted
        ("127.0.0.1, 172.16.0.0/12", ("127.0.0.1", "172.16.0.0/12")),
    ],
)
def test_forwarded_allow_ips_setting(value, expected):
    env = {"FORWARDED_ALLOW_IPS": value}
    assert Settings.from_env(env).forwarded_allow_ips == expected


@pytest.mark.parametrize("value", ["*", "proxy.example", "10.0.0.300"])
def test_forwarded_allow_ips_must_be_addresses(value):
    with pytest.raises(ValueError, match="FORWARDED_ALLOW_IPS must list"):
        Settings.from_env({"FORWARDED_ALLOW_IPS": value})


@pytest.fixture(scope="module")
def direct(synthetic_vae_path, tmp_path_factory):
    """No FORWARDED_ALLOW_IPS: nobody's X-Forwarded-For is believed."""
    with replay_server(
        tmp_path_factory, synthetic_vae_path, "forwarded-direct", RATE_LIMIT=str(LIMIT)
    ) as process:
        yield process


@pytest.fixture
def direct_chat(synthetic_vae_path, tmp_path_factory):
    """Like ``direct``, with its limit unspent: chat and API share one rate
    limiter (core.service), and every client here is 127.0.0.1."""
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "forwarded-direct-chat",
        RATE_LIMIT=str(LIMIT),
    ) as process:
        yield process


@pytest.fixture(scope="module")
def proxied(synthetic_vae_path, tmp_path_factory):
    """A reverse proxy on 127.0.0.1 (FORWARDED_ALLOW_IPS=127.0.0.1)."""
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "forwarded-proxied",
        RATE_LIMIT=str(LIMIT),
        FORWARDED_ALLOW_IPS="127.0.0.1",
    ) as process:
        yield process


def _models(url: str, forwarded: str | None = None, peer: str = "127.0.0.1") -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    transport = httpx.HTTPTransport(local_address=peer)
    with httpx.Client(transport=transport, timeout=30) as http:
        return http.get(f"{url}/v1/models", headers=headers).status_code


@pytest.mark.e2e
def test_forged_forwarded_for_does_not_reset_the_api_limit(direct):
    assert [_models(direct.url) for _ in range(LIMIT)] == [200] * LIMIT
    assert [_models(direct.url, forged) for forged in FORGED] == [429] * 6
    assert _models(direct.url, peer="127.0.0.2") == 200  # the limit is per address


@pytest.mark.e2e
async def test_forged_forwarded_for_does_not_reset_the_chat_limit(direct_chat):
    direct = direct_chat
    first = TabClient(direct.url, address="192.0.2.1")
    await first.connect()
    try:
        await first.send("segment the cat", [("a.png", png())])
        await first.send("segment the cat")
        await first.send("segment the cat")
        refused = await first.send("segment the cat")
        assert LIMITED in refused[-1]["output"], first.outputs()
    finally:
        await first.close()
    for forged in FORGED:
        tab = TabClient(direct.url, address=forged)
        await tab.connect()
        try:
            replies = await tab.send("segment the cat", [("b.png", png())])
            assert LIMITED in replies[-1]["output"], (forged, tab.outputs())
        finally:
            await tab.close()


@pytest.mark.e2e
def test_a_listed_proxy_forwards_the_client_address(proxied):
    """Documented: with FORWARDED_ALLOW_IPS=127.0.0.1, each forwarded address
    has its own limit; a peer not on the list is still keyed by its socket."""
    assert [_models(proxied.url) for _ in range(LIMIT + 1)] == [200] * LIMIT + [429]
    assert [_models(proxied.url, forged) for forged in FORGED] == [200] * 6
    from_elsewhere = [_models(proxied.url, f, "127.0.0.2") for f in FORGED]
    assert from_elsewhere == [200] * LIMIT + [429] * (6 - LIMIT)


@pytest.fixture(scope="module")
def login_server(synthetic_vae_path, tmp_path_factory):
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "forwarded-login",
        AUTH_USERS=f"alice:{hash_password('correct horse')}",
        PERSIST="off",
        LOGIN_RATE_LIMIT=str(LIMIT),
    ) as process:
        yield process


@pytest.mark.e2e
def test_forged_forwarded_for_does_not_reset_the_login_throttle(login_server):
    url = login_server.url
    tries = [login(url, f"mallory{n}", "guess").status_code for n in range(LIMIT)]
    assert tries == [401] * LIMIT
    forged = [
        login(url, f"eve{n}", "guess", a).status_code for n, a in enumerate(FORGED)
    ]
    assert forged == [429] * 6
