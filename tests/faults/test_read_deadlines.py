"""web.readtimeout.ReadDeadlineMiddleware on a bare ASGI app."""

from __future__ import annotations

import asyncio
import json

from web.readtimeout import ReadDeadlineMiddleware


async def read_body_app(scope, receive, send) -> None:
    """Reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def chunks_every(gap_s: float, chunks: list[bytes]):
    """A receive() that hands out ``chunks`` one per ``gap_s`` seconds."""
    pending = list(chunks)

    async def receive():
        if not pending:
            await asyncio.sleep(3600)  # a client that never sends more
        await asyncio.sleep(gap_s)
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    return receive


async def call(app, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/analyze", "headers": []}
    await app(scope, receive, send)
    return sent


async def test_a_trickle_gets_408_after_the_deadline():
    app = ReadDeadlineMiddleware(read_body_app, timeout_s=0.3, min_rate_kb=32)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await call(app, chunks_every(0.05, [b"x"] * 1000))
    assert 0.3 <= loop.time() - started < 1.0
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "request_timeout" and "READ_TIMEOUT_S" in error["message"]


async def test_a_body_keeping_up_the_minimum_rate_may_take_longer():
    """64 KB chunks every 0.1 s (640 KB/s) for 0.6 s, deadline 0.3 s: each KB
    buys 1/32 s, so the upload finishes; without READ_MIN_RATE_KB it is cut."""
    chunks = [b"x" * 64 * 1024] * 6
    app = ReadDeadlineMiddleware(read_body_app, timeout_s=0.3, min_rate_kb=32)
    sent = await call(app, chunks_every(0.1, chunks))
    assert sent[0]["status"] == 200 and sent[1]["body"] == str(6 * 64 * 1024).encode()
    strict = ReadDeadlineMiddleware(read_body_app, timeout_s=0.3, min_rate_kb=0)
    assert (await call(strict, chunks_every(0.1, chunks)))[0]["status"] == 408


async def test_the_routes_own_error_is_dropped_for_the_408():
    async def route_that_catches(scope, receive, send) -> None:
        try:
            await receive()
        except Exception:  # e.g. a form parser's "could not parse the body"
            await send({"type": "http.response.start", "status": 400})
            await send({"type": "http.response.body", "body": b"bad form"})

    app = ReadDeadlineMiddleware(route_that_catches, timeout_s=0.2, min_rate_kb=32)
    sent = await call(app, chunks_every(1.0, [b"x", b"y"]))
    assert [m.get("status") for m in sent if "status" in m] == [408]


async def test_after_the_body_a_route_may_wait_for_the_disconnect_freely():
    """A streamed answer listens for http.disconnect long after the body."""

    async def streaming(scope, receive, send) -> None:
        await receive()  # the whole (one-chunk) body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        message = await receive()  # waits past the read deadline
        await send({"type": "http.response.body", "body": message["type"].encode()})

    calls = 0

    async def receive():
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.sleep(0.5)
        return {"type": "http.disconnect"}

    app = ReadDeadlineMiddleware(streaming, timeout_s=0.1, min_rate_kb=32)
    sent = await call(app, receive)
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"http.disconnect"
