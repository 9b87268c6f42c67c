"""The thread-id check on HTTP routes: an ASGI middleware over
core.security.threads (one spelling of each thread id, checked at every door).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.security.threads import BODY_PATHS, body_thread_ids, route_thread_refusal
from web.headers import send_refusal

logger = logging.getLogger(__name__)


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body, and a ``receive`` that replays it once."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left; the app sees an empty body
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


class ThreadIdMiddleware:
    """Answers 400 to requests naming a thread id that is not canonical.

    Checks the path of ``/project/thread/{id}...`` and ``/project/share/{id}``
    and the JSON body (``threadId``) of BODY_PATHS. Sits inside the body size
    limit, so the body it reads is bounded.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "").rstrip("/")
        body_ids: list[object] = []
        if path in BODY_PATHS and scope.get("method") in ("POST", "PUT", "DELETE"):
            body, receive = await _buffered(receive)
            body_ids = body_thread_ids(body)
        reason = route_thread_refusal(path, body_ids)
        if reason is None:
            await self.app(scope, receive, send)
            return
        logger.warning("refused %s %s: %s", scope.get("method"), path, reason)
        await send_refusal(send, 400, reason)
