"""Security headers on every HTTP response, and route guards Chainlit lacks.

- ``X-Content-Type-Options: nosniff``: an uploaded file served back is never
  sniffed into HTML or script.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no other site
  can frame the chat (clickjacking).
- ``Referrer-Policy: same-origin``: thread ids in URLs stay on this server.
- ``session_id`` query parameters (``/project/file``) must be canonical UUIDs.
- ``PUT /project/thread/share`` is refused while ``allow_thread_sharing`` is off
  (Chainlit 2.12 ignores the switch there).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.security.sessions import SESSION_ID_HINT, is_canonical_uuid

logger = logging.getLogger(__name__)

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"same-origin"),
)
SHARE_PATH = "/project/thread/share"


class SecurityHeadersMiddleware:
    """Adds SECURITY_HEADERS to HTTP responses that do not set them already."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def route_refusal(scope: Scope, sharing_enabled: Callable[[], bool]):
    """(status, message) when the request must not reach Chainlit, else None."""
    path = scope.get("path", "")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    for value in query.get("session_id", []):
        if not is_canonical_uuid(value):
            return 400, f"session_id {value[:80]!r} refused: {SESSION_ID_HINT}."
    if path.rstrip("/").endswith(SHARE_PATH) and not sharing_enabled():
        return 403, (
            "Thread sharing is off on this server (features.allow_thread_sharing "
            "in .chainlit/config.toml)."
        )
    return None


class RouteGuardMiddleware:
    """Refuses bad ``session_id`` parameters (400) and disabled sharing (403)."""

    def __init__(self, app: ASGIApp, sharing_enabled: Callable[[], bool]) -> None:
        self.app = app
        self.sharing_enabled = sharing_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = (
            route_refusal(scope, self.sharing_enabled)
            if scope["type"] == "http"
            else None
        )
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        logger.warning("refused %s %s: %s", scope["method"], scope["path"], message)
        await send_refusal(send, status, message)


async def send_refusal(send: Send, status: int, message: str) -> None:
    """A JSON error response: 400 bad_request or 403 forbidden."""
    code = "bad_request" if status == 400 else "forbidden"
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
