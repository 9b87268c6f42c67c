"""Refuse oversized request bodies before anything buffers them.

Chainlit 2.12's ``/project/file`` reads the whole upload into memory before it
checks ``max_size_mb``; any route parsing a form spools the whole body first.
This ASGI middleware sits in front of every route: a declared Content-Length
over the limit is a 413 before the route runs (the body, when at most
DRAIN_FACTOR times the limit, is read and dropped first so the client sees the
answer), and a streamed (chunked) body is cut off the moment it passes the
limit. Nothing past the limit is ever kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import MB

logger = logging.getLogger(__name__)

FORM_SLACK_BYTES = 64 * 1024  # multipart boundaries and small text fields
# A declared body up to this many times the limit is read and dropped before the
# 413, so browsers and HTTP clients see the answer instead of a reset
# connection; anything larger is answered at once and the connection closed.
DRAIN_FACTOR = 4


VIDEO_PATHS = ("/project/file", "/v1/analyze")  # the doors that take clips


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the streamed body passes the limit."""


def upload_limits(max_upload_mb: int, video_max_mb: int = 0) -> Callable[[str], int]:
    """Bytes allowed per path: MAX_UPLOAD_MB plus form slack; /process and /mcp
    carry the image base64-encoded in JSON (4/3 the size); the paths that take
    video clips (chat uploads, /v1/analyze) the larger of it and VIDEO_MAX_MB."""
    base = max_upload_mb * MB
    clips = max(max_upload_mb, video_max_mb) * MB

    def limit_for(path: str) -> int:
        path = path.rstrip("/")
        if path.endswith(("/process", "/mcp")):
            return base * 4 // 3 + FORM_SLACK_BYTES
        if path.endswith(VIDEO_PATHS):
            return clips + FORM_SLACK_BYTES
        return base + FORM_SLACK_BYTES

    return limit_for


def _too_large_body(limit: int) -> str:
    message = (
        f"The request body is larger than {limit / MB:.1f} MB (MAX_UPLOAD_MB). "
        "Send a smaller or more compressed image."
    )
    return json.dumps({"error": {"code": "payload_too_large", "message": message}})


class BodyLimitMiddleware:
    """413 for any HTTP request body over ``limit_for(path)`` bytes."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            logger.warning(
                "refused %s %s: Content-Length %d > %d",
                scope["method"],
                scope.get("path"),
                declared,
                limit,
            )
            if declared <= DRAIN_FACTOR * limit:
                await _drain(receive)
            await _send_413(send, limit)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:  # the route turned our error into its own: drop it
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            logger.warning(
                "refused %s %s: streamed body passed %d bytes",
                scope["method"],
                scope.get("path"),
                limit,
            )
            if not started:
                await _send_413(send, limit)


async def _drain(receive: Receive) -> None:
    """Read (and drop) the rest of a request body; memory stays one chunk."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


async def _send_413(send: Send, limit: int) -> None:
    body = _too_large_body(limit).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
