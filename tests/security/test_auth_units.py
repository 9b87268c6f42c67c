"""Login tokens, login flood limits, the API's key-or-login check, work costs,
the chat limit's key and the exposure warning, without a server (chat settings
clamping: tests/test_chat_options.py)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from contextlib import nullcontext as does_not_raise

import jwt
import pytest

from chat.session import client_key
from core.errors import RateLimitedError, UnauthorizedError
from core.persist.auth import hash_password
from core.persist.service import main
from core.ratelimit import RateLimiter, work_cost
from core.security.auth import (
    EXPIRED,
    REVOKED,
    LoginGuard,
    SessionTokens,
    api_identity,
    exposure_warning,
    is_loopback,
    warn_if_exposed,
)

FAST = 100_000
SECRET = "s" * 48
ALICE = hash_password("alice password", iterations=FAST)
ALICE_NEW = hash_password("alice's new password", iterations=FAST)
BOB = hash_password("bob password 1", iterations=FAST)


def token_for(tokens: SessionTokens, name: str, *, iat=None, exp_in=3600, **meta):
    now = time.time() if iat is None else iat
    claims = {
        "identifier": name,
        "display_name": None,
        "metadata": {**tokens.metadata(name), **meta},
        "iat": int(now),
        "exp": int(time.time() + exp_in),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_login_outlives_neither_its_user_nor_its_password():
    issued = SessionTokens({"alice": ALICE, "bob": BOB}, SECRET, 3600)
    alice, bob = token_for(issued, "alice"), token_for(issued, "bob")
    assert issued.decode(alice)["identifier"] == "alice"
    # alice removed, bob's password changed: both old tokens are refused
    now = SessionTokens(
        {"bob": hash_password("bob new pass", iterations=FAST)}, SECRET, 3600
    )
    for token in (alice, bob):
        with pytest.raises(UnauthorizedError, match="no longer valid"):
            now.decode(token)
    # a password change of alice alone ends alice's logins, not bob's
    changed = SessionTokens({"alice": ALICE_NEW, "bob": BOB}, SECRET, 3600)
    with pytest.raises(UnauthorizedError, match="no longer valid"):
        changed.decode(alice)
    assert changed.decode(bob)["identifier"] == "bob"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"identifier": "alice", "metadata": {"provider": "password"}}, REVOKED),  # old
        ({"identifier": "alice", "metadata": {"credential": "x"}}, REVOKED),  # forged
        (
            {"identifier": "mallory", "metadata": {"credential": "x"}},
            REVOKED,
        ),  # stranger
        ({"identifier": "alice", "metadata": "credential"}, REVOKED),  # wrong type
        ({"identifier": 7, "metadata": {}}, REVOKED),  # odd identifier
    ],
)
def test_tokens_without_the_right_fingerprint_are_refused(claims, message):
    tokens = SessionTokens({"alice": ALICE}, SECRET, 3600)
    claims = {**claims, "iat": int(time.time()), "exp": int(time.time()) + 60}
    with pytest.raises(UnauthorizedError) as caught:
        tokens.decode(jwt.encode(claims, SECRET, algorithm="HS256"))
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("age_s", "exp_in", "expectation"),
    [
        (0, 3600, does_not_raise()),  # fresh
        (3500, 3600, does_not_raise()),  # near the end of SESSION_HOURS
        (3700, 10**6, pytest.raises(UnauthorizedError, match="expired")),  # too old
        (-600, 3600, pytest.raises(UnauthorizedError, match="not valid")),  # future
        (0, -10, pytest.raises(UnauthorizedError, match="expired")),  # exp passed
    ],
)
def test_login_lifetime_counts_from_issue_time(age_s, exp_in, expectation):
    tokens = SessionTokens({"alice": ALICE}, SECRET, 3600)
    token = token_for(tokens, "alice", iat=time.time() - age_s, exp_in=exp_in)
    with expectation:
        tokens.decode(token)


def test_tokens_signed_with_another_secret_are_refused():
    tokens = SessionTokens({"alice": ALICE}, SECRET, 3600)
    other = SessionTokens({"alice": ALICE}, "o" * 48, 3600)
    claims = {
        "identifier": "alice",
        "metadata": other.metadata("alice"),
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    with pytest.raises(UnauthorizedError, match="not valid"):
        tokens.decode(jwt.encode(claims, "o" * 48, algorithm="HS256"))
    assert EXPIRED != REVOKED


def _api(authorization=None, cookie=None, key="api-key-123", users=True):
    tokens = SessionTokens({"alice": ALICE}, SECRET, 3600) if users else None
    return api_identity(authorization, cookie, key, tokens)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"authorization": "Bearer api-key-123"}, "key:"),  # the API key
        ({"authorization": "Bearer {alice}"}, "user:alice"),  # a user's JWT
        ({"cookie": "{alice}"}, "user:alice"),  # the chat's cookie
        ({"key": None, "cookie": "{alice}"}, "user:alice"),  # login only, no key
        ({"users": False, "key": None}, None),  # neither: the API is open
    ],
)
def test_api_accepts_the_key_or_a_login(kwargs, expected):
    alice = token_for(SessionTokens({"alice": ALICE}, SECRET, 3600), "alice")
    kwargs = {
        k: v.format(alice=alice) if isinstance(v, str) else v for k, v in kwargs.items()
    }
    got = _api(**kwargs)
    assert got == expected if expected is None else got.startswith(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "API key"),  # nothing
        ({"authorization": "Bearer wrong"}, "not valid"),  # wrong key
        ({"authorization": "Basic api-key-123"}, "API key"),  # wrong scheme
        ({"cookie": "{revoked}"}, "no longer valid"),  # removed user's cookie
        ({"authorization": "Bearer {revoked}"}, "no longer valid"),  # and as Bearer
        ({"key": None}, "logged-in user"),  # login only, nothing sent
        ({"users": False}, "Authorization: Bearer"),  # key only: as before
    ],
)
def test_api_refusals(kwargs, message):
    removed = SessionTokens({"alice": ALICE, "carol": BOB}, SECRET, 3600)
    revoked = token_for(removed, "carol")
    kwargs = {
        k: v.format(revoked=revoked) if isinstance(v, str) else v
        for k, v in kwargs.items()
    }
    with pytest.raises(UnauthorizedError, match=message):
        _api(**kwargs)


def test_login_guard_limits_each_address_and_each_name():
    guard = LoginGuard(3)
    for _ in range(3):
        guard.admit("10.0.0.1", "alice")
    with pytest.raises(RateLimitedError, match="from this address") as caught:
        guard.admit("10.0.0.1", "bob")
    assert caught.value.retry_after_s >= 1
    # failed logins of one name from many addresses
    for number in range(3):
        guard.admit(f"10.1.0.{number}", "bob")
        guard.failed("bob")
    with pytest.raises(RateLimitedError, match="for this user name"):
        guard.admit("10.2.0.1", " bob ")
    guard.admit("10.2.0.2", "carol")  # other names are not affected


def test_password_checks_run_on_their_own_small_pool():
    guard = LoginGuard(100, workers=2)
    release, entered = threading.Event(), threading.Semaphore(0)
    lock = threading.Lock()
    running, most = [0], [0]

    def check() -> str:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        entered.release()
        release.wait(10)
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    async def flood() -> list[str]:
        tasks = [asyncio.create_task(guard.run(check)) for _ in range(6)]
        await asyncio.to_thread(lambda: [entered.acquire(timeout=10) for _ in "ab"])
        assert guard._waiting == 6  # two hashing, four queued on the pool
        release.set()
        return await asyncio.gather(*tasks)

    names = asyncio.run(flood())
    assert most[0] == 2
    assert all(name.startswith("password-check") for name in names), names


def test_a_full_password_queue_answers_429():
    guard = LoginGuard(100, max_waiting=1)
    guard._waiting = 1  # one check waiting for a thread
    with pytest.raises(RateLimitedError, match="in progress"):
        guard.admit("10.0.0.1", "alice")


@pytest.mark.parametrize(
    ("images", "tokens", "cost"),
    [
        (1, None, 1),  # one image, sized budget
        (3, None, 3),  # "in all images" over three photos
        (1, 256, 1),
        (1, 257, 2),  # a started block of 256 tokens counts
        (2, 1024, 8),
    ],
)
def test_work_cost(images, tokens, cost):
    assert work_cost(images, tokens) == cost


def test_rate_limiter_counts_cost_and_refuses_oversized_work():
    limiter = RateLimiter(4)
    limiter.hit("ip:1", cost=3)
    with pytest.raises(RateLimitedError, match="Try again"):
        limiter.hit("ip:1", cost=2)
    limiter.hit("ip:1")  # the refused hit counted nothing
    with pytest.raises(RateLimitedError, match="fewer images"):
        limiter.hit("ip:2", cost=5)


class _Session:
    def __init__(self, user=None, client=("203.0.113.7", 5000)):
        self.id = "client-chosen"
        self.user = user
        self.environ = {"asgi.scope": {"client": client}}


class _User:
    identifier = "alice"


@pytest.mark.parametrize(
    ("session", "key"),
    [
        (_Session(_User()), "user:alice"),  # logged in
        (_Session(), "ip:203.0.113.7"),  # anonymous: the socket's peer
        (_Session(client=None), "ip:unknown"),
    ],
)
def test_chat_limit_key_is_never_the_session_id(session, key):
    assert client_key(session) == key


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("::ffff:127.0.0.1", True),  # IPv4-mapped loopback
        ("::ffff:10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "users", "key", "warns"),
    [
        ("0.0.0.0", False, False, True),  # open to the network
        ("0.0.0.0", True, False, False),  # login on
        ("0.0.0.0", False, True, False),  # API key on
        ("127.0.0.1", False, False, False),  # this machine only
    ],
)
def test_exposure_warning(caplog, host, users, key, warns):
    assert (
        exposure_warning(host, has_users=users, has_api_key=key) is None
    ) is not warns
    with caplog.at_level(logging.ERROR, logger="core.security.auth"):
        assert warn_if_exposed(host, users, key) is warns
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert bool(errors) is warns
    if warns:
        assert "AUTH_USERS" in errors[0].getMessage()


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("short pw", 2),  # 8 characters
        ("elevenchars", 2),  # 11
        ("twelve chars", 0),  # 12
    ],
)
def test_hash_password_refuses_short_passwords(monkeypatch, capsys, password, code):
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["hash-password", "carol"]) == code
    out, err = capsys.readouterr()
    assert bool(out) is (code == 0)
    if code:
        assert "at least 12 characters" in err
