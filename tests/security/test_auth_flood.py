"""Login flooding and the AUTH_USERS switch over the real server (loopback).

Client addresses are sent as X-Forwarded-For, which the server believes from
127.0.0.1 only because FORWARDED_ALLOW_IPS says so (a reverse proxy on the same
machine): that is how one test machine plays several attackers.
"""

from __future__ import annotations

import httpx
import pytest
import socketio

from core.persist.auth import hash_password
from tests.security.auth_helpers import TabClient, login, png, replay_server

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
LIMIT = 5


@pytest.fixture(scope="module")
def server(synthetic_vae_path, tmp_path_factory):
    users = ",".join(
        f"{n}:{hash_password(PASSWORD)}" for n in ("alice", "bob", "carol")
    )
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "auth-flood",
        AUTH_USERS=users,
        PERSIST="off",  # login must stay on anyway
        LOGIN_RATE_LIMIT=str(LIMIT),
        FORWARDED_ALLOW_IPS="127.0.0.1",  # the tests play a proxy: see above
    ) as process:
        yield process


async def test_auth_users_turn_login_on_even_with_persist_off(server):
    config = httpx.get(f"{server.url}/auth/config").json()
    assert config["requireLogin"] is True and config["passwordAuth"] is True
    with pytest.raises(socketio.exceptions.ConnectionError):
        await TabClient(server.url).connect()  # no login: no socket
    response = httpx.post(
        f"{server.url}/v1/analyze",
        data={"prompt": "segment cat"},
        files=[("images", ("cat.png", png(), "image/png"))],
    )
    assert response.status_code == 401, response.text
    token = login(server.url, "carol", PASSWORD, "192.0.2.200").cookies["access_token"]
    tab = TabClient(server.url, token=token)
    await tab.connect()  # logged in, no history: the chat works
    try:
        replies = await tab.send("segment the cat", [("cat.png", png())])
        assert "`segment cat`" in replies[-1]["output"], tab.outputs()
    finally:
        await tab.close()


def test_thirty_wrong_logins_from_one_address(server):
    statuses = []
    for number in range(30):
        response = login(server.url, f"mallory{number}", "guess", "198.51.100.7")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert "LOGIN_RATE_LIMIT" in response.json()["detail"]
    assert statuses == [401] * LIMIT + [429] * (30 - LIMIT)
    # the right password does not get through from that address either ...
    assert login(server.url, "alice", PASSWORD, "198.51.100.7").status_code == 429
    # ... while another address logs in
    assert login(server.url, "alice", PASSWORD, "198.51.100.8").status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_wrong_logins_of_one_name_from_many_addresses(server):
    for number in range(LIMIT):
        response = login(server.url, "bob", f"guess {number}", f"203.0.113.{number}")
        assert response.status_code == 401, response.text
    locked = login(server.url, "bob", PASSWORD, "203.0.113.100")  # right password
    assert locked.status_code == 429, locked.text
    assert "this user name" in locked.json()["detail"]
    other = login(server.url, "carol", PASSWORD, "203.0.113.101")
    assert other.status_code == 200, other.text


def test_login_token_comes_as_a_cookie_and_works_as_a_bearer(server):
    """What docs/api.md tells API clients: POST /login answers only
    {"success": true} and sets the token as the ``access_token`` cookie; that
    value also works as ``Authorization: Bearer``."""
    response = login(server.url, "alice", PASSWORD, "192.0.2.201")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}  # no token in the body
    token = response.cookies["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    models = httpx.get(f"{server.url}/v1/models", headers=bearer, timeout=30)
    assert models.status_code == 200, models.text
    refused = httpx.get(f"{server.url}/v1/models", timeout=30)
    assert refused.status_code == 401, refused.text
