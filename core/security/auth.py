"""Who may use the app: login sessions that end when their user or password
changes, limits on login attempts, the API's key-or-login check, and the
warning for an open server on a public address.

Pure Python (PyJWT, limits): ``chat.persist.login`` wires it into Chainlit.

A Chainlit login is an HS256 JWT (cookie ``access_token`` or ``Authorization:
Bearer``) carrying the user's metadata. Ours holds a *credential fingerprint*,
HMAC-SHA256(auth secret, name + stored password hash): removing the user from
AUTH_USERS or changing their password changes the expected fingerprint, so
every token issued before is refused on its next use, without a token list.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import jwt
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from core.errors import RateLimitedError, UnauthorizedError
from core.ratelimit import check_api_key

logger = logging.getLogger(__name__)

PROVIDER = "password"
CREDENTIAL_KEY = "credential"  # metadata key of the fingerprint in the JWT
CLOCK_SKEW_S = 60
PASSWORD_WORKERS = 2  # threads that hash login passwords (PBKDF2, ~0.3 s each)
PASSWORD_QUEUE = 8  # login checks waiting for those threads before a 429
T = TypeVar("T")

REVOKED = (
    "This login is no longer valid (the user was removed or the password "
    "changed): log in again."
)
EXPIRED = "This login has expired (SESSION_HOURS): log in again."


class SessionTokens:
    """Issues the login metadata and checks login JWTs against AUTH_USERS.

    ``users`` maps names to stored password hashes; ``lifetime_s`` is the
    longest a login lasts from its issue time (``iat``), whatever its ``exp``.
    """

    def __init__(self, users: Mapping[str, str], secret: str, lifetime_s: float):
        if not secret:
            raise ValueError("SessionTokens needs the non-empty auth secret")
        self._users = dict(users)
        self._secret = secret
        self._key = hashlib.sha256(b"login-credential\0" + secret.encode()).digest()
        self.lifetime_s = float(lifetime_s)

    def fingerprint(self, name: str) -> str | None:
        """The credential fingerprint of ``name``; None for an unknown user."""
        encoded = self._users.get(name)
        if encoded is None:
            return None
        message = f"{name}\0{encoded}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def metadata(self, name: str) -> dict[str, str]:
        """The JWT metadata of a password login of ``name`` (a known user)."""
        fingerprint = self.fingerprint(name)
        if fingerprint is None:
            raise ValueError(f"{name!r} is not in AUTH_USERS")
        return {"provider": PROVIDER, CREDENTIAL_KEY: fingerprint}

    def check_claims(self, claims: Mapping[str, Any], now: float | None = None) -> str:
        """The user name of decoded JWT ``claims``; UnauthorizedError when the
        user is gone, the password changed or the login is older than
        ``lifetime_s``."""
        name = claims.get("identifier")
        metadata = claims.get("metadata")
        got = metadata.get(CREDENTIAL_KEY) if isinstance(metadata, dict) else None
        expected = self.fingerprint(name) if isinstance(name, str) else None
        if (
            expected is None
            or not isinstance(got, str)
            or not hmac.compare_digest(got.encode(), expected.encode())
        ):
            logger.info("refused a revoked login of %r", str(name)[:64])
            raise UnauthorizedError(REVOKED)
        now = time.time() if now is None else now
        issued = claims.get("iat")
        if (
            not isinstance(issued, int | float)
            or issued > now + CLOCK_SKEW_S
            or now - issued > self.lifetime_s
        ):
            raise UnauthorizedError(EXPIRED)
        return name

    def decode(self, token: str) -> dict[str, Any]:
        """Verified claims of a login JWT (signature, ``exp``, then
        ``check_claims``); UnauthorizedError otherwise."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError(EXPIRED) from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError("The login token is not valid.") from exc
        self.check_claims(claims)
        return claims


def api_identity(
    authorization: str | None,
    cookie_token: str | None,
    api_key: str | None,
    tokens: SessionTokens | None,
) -> str | None:
    """Who calls the REST API: ``key:<id>``, ``user:<name>``, or None when the
    API is open (neither API_KEY nor AUTH_USERS). UnauthorizedError otherwise.

    With AUTH_USERS (``tokens``), a logged-in user's JWT, as the chat's
    ``access_token`` cookie or ``Authorization: Bearer``, is accepted besides
    the API key.
    """
    if tokens is None:
        return check_api_key(authorization, api_key)
    scheme, _, credential = (authorization or "").partition(" ")
    bearer = credential.strip() if scheme.lower() == "bearer" else ""
    if api_key and bearer and hmac.compare_digest(bearer.encode(), api_key.encode()):
        return check_api_key(authorization, api_key)
    refusal: UnauthorizedError | None = None
    for token in (bearer, cookie_token or ""):
        if token.count(".") != 2:  # not a JWT (e.g. a wrong API key)
            continue
        try:
            return "user:" + tokens.decode(token)["identifier"]
        except UnauthorizedError as exc:
            refusal = refusal or exc
    if refusal is not None:
        raise refusal
    if bearer:
        raise UnauthorizedError("The API key or login token is not valid.")
    raise UnauthorizedError(
        "This API needs an API key ('Authorization: Bearer <key>') or a "
        "logged-in user's token (the chat's access_token cookie, or "
        "'Authorization: Bearer <token>' from POST /login)."
    )


class LoginGuard:
    """Login flood limits and the thread pool that checks passwords.

    Per client address, every attempt counts; per user name, failed ones:
    ``per_minute`` of each in any 60 s window. Password hashes run on
    ``workers`` threads of their own, so a flood queues there instead of
    taking the threads that decode images and serve the API.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        workers: int = PASSWORD_WORKERS,
        max_waiting: int = PASSWORD_QUEUE,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"LOGIN_RATE_LIMIT must be >= 1, got {per_minute}")
        self.per_minute = per_minute
        self.max_waiting = max_waiting
        self._item = RateLimitItemPerMinute(per_minute)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="password-check")
        self._waiting = 0
        self._lock = threading.Lock()

    def admit(self, address: str, name: str) -> None:
        """Count an attempt from ``address`` for ``name``; RateLimitedError when
        the address or the name is over its limit or the pool is full."""
        if not self._limiter.hit(self._item, "login-ip", address):
            self._refuse("login-ip", address, "from this address")
        if not self._limiter.test(self._item, "login-name", _name_key(name)):
            self._refuse("login-name", _name_key(name), "for this user name")
        if self._waiting >= self.max_waiting:
            raise RateLimitedError(
                "Too many logins in progress; try again in a few seconds.",
                retry_after_s=5,
            )

    def failed(self, name: str) -> None:
        """Count a failed login of ``name``."""
        self._limiter.hit(self._item, "login-name", _name_key(name))

    async def run(self, check: Callable[..., T], *args: Any) -> T:
        """``check(*args)`` on the password threads."""
        with self._lock:
            self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, check, *args)
        finally:
            with self._lock:
                self._waiting -= 1

    def _refuse(self, scope: str, key: str, what: str) -> None:
        stats = self._limiter.get_window_stats(self._item, scope, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        logger.warning("login attempts %s %r over the limit", what, key[:64])
        raise RateLimitedError(
            f"Too many login attempts {what}: the limit is {self.per_minute} per "
            f"minute (LOGIN_RATE_LIMIT). Try again in {retry_after} s.",
            retry_after_s=retry_after,
        )


def _name_key(name: str) -> str:
    return name.strip()[:64]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]").lower()
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def exposure_warning(host: str, *, has_users: bool, has_api_key: bool) -> str | None:
    """The error to log when the server listens beyond loopback with no login
    and no API key (anyone who reaches it can use the chat and the API)."""
    if is_loopback(host) or has_users or has_api_key:
        return None
    return (
        f"Listening on {host} with neither AUTH_USERS nor API_KEY set: anyone who "
        "can reach this address can use the chat and the REST API. Set AUTH_USERS "
        "(chat login, also accepted by the API) and/or API_KEY, or HOST=127.0.0.1."
    )


def warn_if_exposed(host: str, has_users: bool, has_api_key: bool) -> bool:
    """Log ``exposure_warning`` at error level when it applies; True if so."""
    warning = exposure_warning(host, has_users=has_users, has_api_key=has_api_key)
    if warning:
        logger.error(warning)
    return warning is not None
