"""Read deadlines: a client that sends its request too slowly is cut off.

Without them a client sending a byte a second holds a connection (and, for a
body, a route's task and buffers) forever; twenty such clients cost nothing.
Two guards, both on every route (the API, Chainlit's ``/project/file`` upload,
the socket.io handshake and polling):

- headers (``install_header_deadline``): the request line and headers must
  arrive within READ_TIMEOUT_S of the connection opening, or of the previous
  answer on a kept-alive connection. An ASGI middleware never sees a request
  before its headers are complete, so this sits in uvicorn's HTTP protocol
  (the class ``--http auto`` picks: h11 here, httptools when installed): a
  timer starts on ``connection_made`` and stops when a request's headers are
  complete (a request/response cycle starts, or the socket is upgraded).
  When it fires, the client gets 408 (it had started a request) or the idle
  connection is closed.
- bodies (``ReadDeadlineMiddleware``): a body must arrive within
  READ_TIMEOUT_S plus one second per READ_MIN_RATE_KB kilobytes received
  (Apache mod_reqtimeout's MinRate), so a large upload on a slow link still
  finishes while a trickle does not. Past it: 408 and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

KB = 1024


def _timeout_json(what: str, timeout_s: float) -> bytes:
    message = (
        f"The request {what} did not arrive within {timeout_s:g} s (READ_TIMEOUT_S); "
        "send it at once, on a faster link, or raise READ_TIMEOUT_S / lower "
        "READ_MIN_RATE_KB on the server."
    )
    error = {"code": "request_timeout", "message": message}
    return json.dumps({"error": error}).encode()


class ReadTimedOut(Exception):
    """Raised from ``receive`` when the body's deadline passes."""


class ReadDeadlineMiddleware:
    """408 for an HTTP request body slower than the deadline (module doc)."""

    def __init__(self, app: ASGIApp, timeout_s: float, min_rate_kb: float) -> None:
        self.app = app
        self.timeout_s = timeout_s
        self.seconds_per_byte = 1 / (min_rate_kb * KB) if min_rate_kb > 0 else 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body_done = timed_out = started = False

        async def timed_receive() -> Message:
            nonlocal deadline, body_done, timed_out
            if body_done:  # e.g. waiting for a disconnect while streaming
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise ReadTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body"):
                body_done = True
            deadline += len(message.get("body", b"")) * self.seconds_per_byte
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:  # the route turned our error into its own: drop it
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except ReadTimedOut:
            pass
        except Exception:
            if not timed_out:
                raise
        if timed_out:
            logger.warning(
                "cut off %s %s from %s: body slower than READ_TIMEOUT_S",
                scope["method"],
                scope.get("path"),
                (scope.get("client") or ("?",))[0],
            )
            if not started:
                await _send_408(send, _timeout_json("body", self.timeout_s))


async def _send_408(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 408,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _HeaderDeadline:
    """The header timer, mixed in before uvicorn's protocol class (module doc);
    ``header_deadline_protocol`` sets the two class attributes."""

    _header_timeout_s: float
    _late_response: bytes  # the 408 sent when a begun request's headers are late
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = False  # a request was begun since the timer started

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        self._header_bytes = self._header_bytes or self._header_timer is not None
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not before or self.transport.get_protocol() is not self:
            self._stop_header_timer()  # headers complete: a cycle or upgrade

    def on_response_complete(self) -> None:
        finished = self.cycle
        super().on_response_complete()  # type: ignore[misc]
        if self.cycle is finished and not self.transport.is_closing():
            self._start_header_timer()  # the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _start_header_timer(self) -> None:
        self._stop_header_timer()
        self._header_bytes = False
        self._header_timer = self.loop.call_later(
            self._header_timeout_s, self._headers_late
        )

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (
            self.cycle is not None and not self.cycle.response_complete
        ):
            return
        if self._header_bytes:
            logger.warning(
                "closed a connection from %s: headers slower than READ_TIMEOUT_S",
                (self.client or ("?",))[0],
            )
            self.transport.write(self._late_response)
        self.transport.close()


def header_deadline_protocol(base: type, timeout_s: float) -> type:
    """``base`` (uvicorn's H11Protocol or HttpToolsProtocol) with a deadline
    on request headers (module doc)."""
    answer = _timeout_json("headers", timeout_s)
    response = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(answer), answer)
    )
    name = f"HeaderDeadline{base.__name__}"
    attributes = {"_header_timeout_s": timeout_s, "_late_response": response}
    protocol = type(name, (_HeaderDeadline, base), attributes)
    protocol.__qualname__ = name
    return protocol


def install_header_deadline(timeout_s: float) -> None:
    """Make uvicorn's ``--http auto`` protocol keep a header deadline; call
    before the server starts (chainlit run builds its uvicorn.Config later).
    Idempotent: a later call keeps the first deadline."""
    from uvicorn.protocols.http import auto

    current = auto.AutoHTTPProtocol
    if getattr(current, "header_deadline_s", None) is not None:
        return
    protocol = header_deadline_protocol(current, timeout_s)
    protocol.header_deadline_s = timeout_s  # type: ignore[attr-defined]
    auto.AutoHTTPProtocol = protocol  # type: ignore[misc]
    logger.info("request headers must arrive within %g s (READ_TIMEOUT_S)", timeout_s)
