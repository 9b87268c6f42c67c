"""Attacks on logins over the real server (loopback): an old cookie after its
user was removed or their password changed, token renewal, a login older than
SESSION_HOURS, and the REST API with and without a user's login.

The first server has alice and bob; it is restarted (same DATA_DIR, so the same
auth secret) without alice and with bob's password changed, as an operator
would, and every check below runs against the restarted one.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt
import pytest
import socketio

from core.persist.auth import hash_password
from core.security.auth import SessionTokens
from tests.security.auth_helpers import TabClient, login, png, replay_env, run_server

pytestmark = pytest.mark.e2e

ALICE_PW = "alice horse battery"
BOB_PW = "bob staple battery"
BOB_NEW_PW = "bob's brand new password"
SESSION_HOURS = 2


def _token(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.cookies["access_token"]


@pytest.fixture(scope="module")
def world(synthetic_vae_path, tmp_path_factory):
    """(restarted server, old tokens {name: token}, new users {name: hash})."""
    folder = tmp_path_factory.mktemp("auth-revocation")
    alice, bob = hash_password(ALICE_PW), hash_password(BOB_PW)
    env = replay_env(folder, synthetic_vae_path, AUTH_USERS=f"alice:{alice},bob:{bob}")
    first = run_server(env, folder / "first.log")
    try:
        response = login(first.url, "alice", ALICE_PW)
        old = {
            "alice": _token(response),
            "bob": _token(login(first.url, "bob", BOB_PW)),
        }
        # the cookie lives as long as the login: 24 h by default
        assert "Max-Age=86400" in response.headers["set-cookie"], response.headers
        for token in old.values():
            me = httpx.get(f"{first.url}/user", cookies={"access_token": token})
            assert me.status_code == 200, me.text
    finally:
        first.stop()
    users = {"bob": hash_password(BOB_NEW_PW), "carol": hash_password(ALICE_PW)}
    env["AUTH_USERS"] = ",".join(f"{name}:{h}" for name, h in users.items())
    env["SESSION_HOURS"] = str(SESSION_HOURS)
    second = run_server(env, folder / "second.log")
    try:
        yield second, old, users, Path(env["DATA_DIR"])
    finally:
        second.stop()


@pytest.mark.parametrize("name", ["alice", "bob"])  # removed; password changed
def test_old_cookie_is_refused_on_the_next_request(world, name):
    server, old, _, _ = world
    for response in (
        httpx.get(f"{server.url}/user", cookies={"access_token": old[name]}),
        httpx.get(
            f"{server.url}/user", headers={"Authorization": f"Bearer {old[name]}"}
        ),
        httpx.post(
            f"{server.url}/project/threads",
            json={"pagination": {"first": 20}, "filter": {}},
            cookies={"access_token": old[name]},
        ),
    ):
        assert response.status_code == 401, response.text
    assert f"refused a revoked login of {name!r}" in server.log()


@pytest.mark.parametrize("name", ["alice", "bob"])
async def test_old_cookie_cannot_open_a_socket(world, name):
    server, old, _, _ = world
    tab = TabClient(server.url, token=old[name])
    with pytest.raises(socketio.exceptions.ConnectionError):
        await tab.connect()


async def test_new_password_logs_in_and_chats(world):
    server, _, _, _ = world
    assert login(server.url, "bob", BOB_PW).status_code == 401  # the old password
    token = _token(login(server.url, "bob", BOB_NEW_PW))
    tab = TabClient(server.url, token=token)
    await tab.connect()
    try:
        replies = await tab.send("segment the cat", [("cat.png", png())])
        assert "`segment cat`" in replies[-1]["output"], tab.outputs()
    finally:
        await tab.close()


def test_token_renewal_is_refused(world):
    server, _, _, _ = world
    token = _token(login(server.url, "carol", ALICE_PW))
    response = httpx.post(
        f"{server.url}/auth/jwt", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403, response.text
    assert "renewal" in response.json()["detail"]
    assert "access_token" not in response.cookies


def _crafted(data_dir: Path, users: dict[str, str], age_s: float) -> str:
    """A token exactly as the server issues one for carol, ``age_s`` old."""
    secret = (data_dir / "auth-secret").read_text().strip()
    tokens = SessionTokens(users, secret, SESSION_HOURS * 3600)
    issued = int(time.time() - age_s)
    claims = {
        "identifier": "carol",
        "display_name": None,
        "metadata": tokens.metadata("carol"),
        "iat": issued,
        "exp": issued + 15 * 24 * 3600,  # what Chainlit's old 15-day default gave
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("age_s", "status"),
    [
        (60, 200),  # case: a minute old
        (SESSION_HOURS * 3600 + 60, 401),  # case: older than SESSION_HOURS
    ],
)
def test_login_ends_after_session_hours_whatever_its_exp(world, age_s, status):
    server, _, users, data_dir = world
    token = _crafted(data_dir, users, age_s)
    response = httpx.get(f"{server.url}/user", cookies={"access_token": token})
    assert response.status_code == status, response.text


def test_login_cookie_lasts_session_hours(world):
    server, _, _, _ = world
    response = login(server.url, "carol", ALICE_PW)
    assert f"Max-Age={SESSION_HOURS * 3600}" in response.headers["set-cookie"]


def _analyze(server, **kwargs) -> httpx.Response:
    files = [("images", ("cat.png", png(), "image/png"))]
    return httpx.post(
        f"{server.url}/v1/analyze",
        data={"prompt": "segment cat"},
        files=files,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("how", "status"),
    [
        ("nothing", 401),  # case: no credentials at all
        ("bearer", 200),  # case: a logged-in user's JWT as Bearer
        ("cookie", 200),  # case: the chat's login cookie
        ("old-bearer", 401),  # case: a removed user's JWT
        ("old-cookie", 401),  # case: a changed password's cookie
        ("garbage", 401),  # case: not a key, not a JWT
    ],
)
def test_api_needs_a_login_when_users_are_set(world, how, status):
    server, old, _, _ = world
    token = _token(login(server.url, "carol", ALICE_PW))
    kwargs = {
        "nothing": {},
        "bearer": {"headers": {"Authorization": f"Bearer {token}"}},
        "cookie": {"cookies": {"access_token": token}},
        "old-bearer": {"headers": {"Authorization": f"Bearer {old['alice']}"}},
        "old-cookie": {"cookies": {"access_token": old["bob"]}},
        "garbage": {"headers": {"Authorization": "Bearer not-a-key"}},
    }[how]
    response = _analyze(server, **kwargs)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["results"][0]["detections"][0]["label"] == "cat"
    else:
        assert response.json()["error"]["code"] == "unauthorized"
    assert httpx.get(f"{server.url}/health").status_code == 200  # probes stay open
