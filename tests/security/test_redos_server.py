"""ReDoS over the real server: the worst messages leave /health answering.

Parsing runs in a thread, but Python's ``re`` holds the GIL: one anonymous
307-character chat message once made /health wait 12.7 s, the same through
/v1/chat/completions. Here the worst messages of tests/security/test_redos.py
go through the chat socket and the OpenAI door while /health is polled; every
poll must answer within HEALTH_LIMIT_S.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from core.config import Settings
from tests.security.conftest import assert_alive
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e

MAX_CHARS = Settings().max_prompt_chars
HEALTH_LIMIT_S = 1.0
WORST = (
    "region" + " " * (MAX_CHARS - 7) + "x",  # n^4 in the region patterns
    "segment cat" + "," * 1000 + "x in image 1 and the dog in image 2",  # n^3
    "segment cat" + ", and" * 300 + " x in image 1 and the dog in image 2",  # 2^n
    "zoom into" + "\t\n" * ((MAX_CHARS - 10) // 2) + "x",
)


async def watch_health(url: str, stop: asyncio.Event) -> list[float]:
    """Poll /health until ``stop``; each answer's latency. Raises when one
    takes longer than HEALTH_LIMIT_S."""
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=HEALTH_LIMIT_S) as http:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                response = await http.get("/health")
            except httpx.TimeoutException as exc:
                raise AssertionError(
                    f"/health did not answer in {HEALTH_LIMIT_S} s during the attack "
                    f"(after {len(latencies)} answers)"
                ) from exc
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - start)
            assert latencies[-1] < HEALTH_LIMIT_S, f"/health took {latencies[-1]} s"
            await asyncio.sleep(0.05)
    return latencies


async def while_watching(url: str, attack) -> list[float]:
    """Run ``attack`` while /health is polled; fail as soon as a poll fails."""
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_health(url, stop))
    await asyncio.sleep(0.2)  # a few answers before the attack
    attacker = asyncio.create_task(attack())
    done, _ = await asyncio.wait(
        {watcher, attacker}, timeout=120, return_when=asyncio.FIRST_COMPLETED
    )
    if attacker not in done:  # /health failed first (or the attack hung)
        attacker.cancel()
        if watcher in done:
            watcher.result()  # raises: /health did not answer in time
        raise AssertionError("the attack did not finish in 120 s")
    stop.set()
    attacker.result()  # raises if a door answered wrongly
    return await watcher


async def send_chat(client: ChatClient) -> None:
    for text in WORST:
        replies = await client.send(text, timeout_s=60)
        assert replies, f"no reply to {text[:20]!r}"


async def send_openai(url: str, texts: tuple[str, ...]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for text in texts:
            body = {
                "model": "paligemma",
                "messages": [{"role": "user", "content": text}],
            }
            response = await http.post("/v1/chat/completions", json=body)
            assert response.status_code in (200, 400), response.text


@pytest.mark.e2e
@pytest.mark.parametrize("door", ["chat", "openai"])
async def test_worst_messages_leave_health_answering(secure_server, door):
    # One server per door (an unread variable tells them apart): a frozen
    # server must not fail the other door's test for it.
    server = secure_server(REDOS_TEST_DOOR=door)
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.send("how many cats are there?")  # loads the language model
        await send_openai(server.url, ("how many cats are there?",))
        if door == "chat":
            latencies = await while_watching(server.url, lambda: send_chat(client))
        else:
            latencies = await while_watching(
                server.url, lambda: send_openai(server.url, WORST)
            )
        assert len(latencies) >= 3, latencies
    finally:
        await client.close()
    assert_alive(server)
