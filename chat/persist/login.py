"""Chainlit's password login made revocable and flood-proof.

Chainlit 2.12 trusts any JWT signed with its secret until it expires, renews
it on ``POST /auth/jwt`` and re-checks nothing. Here:

- every token Chainlit decodes (HTTP routes and socket connects both go through
  ``chainlit.auth.decode_jwt``) must also pass ``SessionTokens.check_claims``:
  the user is still in AUTH_USERS with the same password, and the login is
  younger than SESSION_HOURS;
- ``POST /auth/jwt`` (renewal) is refused: a login ends SESSION_HOURS after the
  password was typed;
- ``POST /login`` is rate limited per client address and per user name
  (LoginGuard) before Chainlit's own login route runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import chainlit.auth
import chainlit.server
from chainlit.config import config
from chainlit.user import User
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from core.config import Settings
from core.errors import RateLimitedError
from core.persist.auth import PasswordChecker
from core.persist.service import Persistence
from core.security.auth import LoginGuard, SessionTokens
from core.security.clients import client_address

logger = logging.getLogger(__name__)

RENEWAL_REFUSED = (
    "Token renewal is turned off for password logins: log in again with "
    "POST /login when the login expires (SESSION_HOURS)."
)


def protect_sessions(tokens: SessionTokens) -> None:
    """Make Chainlit check every login token against ``tokens`` and issue
    logins that last ``tokens.lifetime_s``. Call once, at import of the app.

    Raises RuntimeError when Chainlit no longer has the functions wrapped
    (an upgrade changed them): the app must not start with revocation off.
    """
    original = getattr(chainlit.auth, "decode_jwt", None)
    if original is None or getattr(chainlit.server, "decode_jwt", None) is None:
        raise RuntimeError(
            "chainlit.auth.decode_jwt is gone: this Chainlit version is not the "
            "one chat.persist.login supports (chainlit==2.12.0)"
        )
    if getattr(original, "checks_revocation", False):
        original = original.original

    def decode_checked(token: str) -> User:
        tokens.decode(token)  # UnauthorizedError: Chainlit answers 401
        return original(token)

    decode_checked.checks_revocation = True  # type: ignore[attr-defined]
    decode_checked.original = original  # type: ignore[attr-defined]
    chainlit.auth.decode_jwt = decode_checked
    chainlit.server.decode_jwt = decode_checked
    config.project.user_session_timeout = int(tokens.lifetime_s)


def install_login_routes(
    app: FastAPI, guard: LoginGuard, trusted_proxies: tuple[str, ...] = ()
) -> None:
    """``POST /login`` with the flood limits and ``POST /auth/jwt`` refused,
    in front of Chainlit's routes of the same paths."""
    router = APIRouter()

    @router.post("/login")
    async def login(
        request: Request,
        response: Response,
        form_data: OAuth2PasswordRequestForm = Depends(),  # noqa: B008
    ):
        address = client_address(request.scope, trusted_proxies)
        try:
            guard.admit(address, form_data.username)
        except RateLimitedError as exc:
            raise HTTPException(
                status_code=exc.http_status,
                detail=exc.message,
                headers={"Retry-After": str(exc.retry_after_s)},
            ) from exc
        try:
            return await chainlit.server.login(request, response, form_data)
        except HTTPException as exc:
            if exc.status_code == 401:
                guard.failed(form_data.username)
            raise

    @router.post("/auth/jwt")
    async def refuse_renewal() -> None:
        raise HTTPException(status_code=403, detail=RENEWAL_REFUSED)

    before = len(app.router.routes)
    app.include_router(router)
    ours = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = ours  # first match wins over Chainlit's own
    logger.info("login: rate limited /login, /auth/jwt renewal refused")


@dataclass(frozen=True)
class Login:
    """The password login of the chat: build with ``from_persistence`` when
    AUTH_USERS is set, register ``password_auth`` with Chainlit, ``install``
    at app start."""

    checker: PasswordChecker
    tokens: SessionTokens
    guard: LoginGuard
    trusted_proxies: tuple[str, ...] = ()  # FORWARDED_ALLOW_IPS

    @classmethod
    def from_persistence(cls, persist: Persistence, settings: Settings) -> Login:
        """Wires revocation into Chainlit (``protect_sessions``) right away."""
        tokens = persist.session_tokens(settings.session_hours * 3600)
        protect_sessions(tokens)
        guard = LoginGuard(settings.login_rate_limit)
        return cls(persist.checker(), tokens, guard, settings.forwarded_allow_ips)

    async def password_auth(self, username: str, password: str) -> User | None:
        """Chainlit's password callback: the hash runs on the guard's threads;
        the user's JWT carries their credential fingerprint."""
        name = username.strip()
        if await self.guard.run(self.checker.check, name, password):
            return User(identifier=name, metadata=self.tokens.metadata(name))
        return None

    def install(self, app: FastAPI) -> None:
        install_login_routes(app, self.guard, self.trusted_proxies)
