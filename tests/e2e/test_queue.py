"""The fair queue over the real server: a flood of API clients while people
chat, and abandoned work (disconnect, hang-up, Stop) never reaching the model.

The model is the replay engine made slow deterministically: a per-piece delay
for the flood, a FIFO gate (one byte releases one answer piece) where the test
must know exactly what the model is doing. Its call log says which prompts
reached the model.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.recorded import WHEELS_SEGMENT
from tests.support.chat_client import ChatClient, start_server

pytestmark = pytest.mark.e2e

CAPTION = "a red car on a street"  # 6 pieces: 6 gate bytes
ANSWERS = {
    "caption en": CAPTION,
    "segment cat": WHEELS_SEGMENT,
    "detect car": "<loc0051><loc0309><loc0708><loc0646> car",
    "detect dog": "<loc0051><loc0309><loc0708><loc0646> dog",
    "detect cat": "<loc0051><loc0309><loc0708><loc0646> cat",
}
API_CLIENTS = 40  # distinct client addresses 127.0.0.2 ..
API_CALLS_EACH = 3  # sent at once: one more than QUEUE_PER_CLIENT
CHAT_USERS = 4


def png_bytes(size=(48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def _server(folder: Path, synthetic_vae_path, options: dict, **env):
    recording = folder / "recording.json"
    recording.write_text(json.dumps({"answers": ANSWERS, **options}))
    base = {
        "MODEL_ID": f"replay:{recording}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(folder / "data"),
        "RATE_LIMIT": "0",
    }
    server = start_server({**base, **env}, folder / "server.log")
    server.wait_ready()
    return server


def calls(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def queue_state(server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=10).json()["queue"]


async def until(condition, what: str, timeout_s: float = 30) -> None:
    """Wait for a server-side condition (polled with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def idle(server) -> bool:
    state = queue_state(server)
    return not any(state["waiting"].values()) and not any(state["running"].values())


@pytest.fixture(scope="module")
def flood_server(synthetic_vae_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("flood")
    options = {"token_delay_s": 0.01, "call_log": str(folder / "calls.jsonl")}
    env = {"QUEUE_MAX": "16", "QUEUE_PER_CLIENT": "2"}
    server = _server(folder, synthetic_vae_path, options, **env)
    server.call_log = folder / "calls.jsonl"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gated_server(synthetic_vae_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gated")
    gate = folder / "gate"
    os.mkfifo(gate)
    options = {"gate": str(gate), "call_log": str(folder / "calls.jsonl")}
    server = _server(folder, synthetic_vae_path, options, DISCONNECT_GRACE_S="3")
    server.call_log = folder / "calls.jsonl"
    writer = os.open(gate, os.O_RDWR)  # never blocks; the model reads from it
    server.release = lambda pieces: os.write(writer, b"x" * pieces)
    yield server
    os.close(writer)
    server.stop()


async def _api_client(url: str, address: str, statuses: list[int]) -> int:
    """API_CALLS_EACH requests at once from ``address``, each retried on
    429/503 after Retry-After until it succeeds; the successes."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(
        transport=transport, base_url=url, timeout=120
    ) as http:

        async def one() -> None:
            while True:
                response = await http.post(
                    "/segment",
                    data={"prompt": "detect car"},
                    files={"image_file": ("car.png", png_bytes(), "image/png")},
                )
                statuses.append(response.status_code)
                if response.status_code == 200:
                    assert response.json()["masks"][0]["label"] == "car"
                    return
                assert response.status_code in (429, 503), response.text
                retry_after = int(response.headers["Retry-After"])
                assert retry_after >= 1
                # The client's back-off: Retry-After, capped so that a loaded
                # test machine (slow measured jobs, long estimates) stays quick.
                await asyncio.sleep(min(retry_after, 5))

        await asyncio.gather(*(one() for _ in range(API_CALLS_EACH)))
    return API_CALLS_EACH


async def test_a_flood_of_api_clients_neither_refuses_chat_nor_starves_anyone(
    flood_server,
):
    chats = [ChatClient(flood_server.url) for _ in range(CHAT_USERS)]
    for chat in chats:
        await chat.connect()
    statuses: list[int] = []
    addresses = [f"127.0.0.{2 + i}" for i in range(API_CLIENTS)]
    flood = asyncio.gather(
        *(_api_client(flood_server.url, a, statuses) for a in addresses)
    )
    try:
        await until(
            lambda: queue_state(flood_server)["waiting"]["api"] >= 8, "a deep queue"
        )
        replies = await asyncio.gather(
            *(
                chat.send("segment cat", [("cat.png", png_bytes())], timeout_s=60)
                for chat in chats
            )
        )
        done = await asyncio.wait_for(flood, timeout=90)
    finally:
        for chat in chats:
            await chat.close()
    for chat_replies in replies:  # every person got their result, none "busy"
        text = " ".join(m["output"] for m in chat_replies)
        assert "`segment cat`" in chat_replies[-1]["output"], text
        assert "busy" not in text.lower()
    assert done == [API_CALLS_EACH] * API_CLIENTS  # every client got all its answers
    assert set(statuses) <= {200, 429, 503}, sorted(set(statuses))
    assert 429 in statuses and 503 in statuses  # both caps were in force
    assert statuses.count(200) == API_CLIENTS * API_CALLS_EACH
    await until(lambda: idle(flood_server), "an empty queue", 10)
    ran = [c for c in calls(flood_server.call_log) if c["event"] == "done"]
    assert sum(c["prompt"] == "detect car" for c in ran) == statuses.count(200)
    assert sum(c["prompt"] == "segment cat" for c in ran) == CHAT_USERS


async def _running(server, kind: str) -> None:
    await until(lambda: queue_state(server)["running"][kind] == 1, f"a {kind} job")


async def test_work_abandoned_while_waiting_never_reaches_the_model(gated_server):
    first, leaver = ChatClient(gated_server.url), ChatClient(gated_server.url)
    await first.connect()
    await leaver.connect()
    image = [("photo.png", png_bytes())]
    try:
        answered = asyncio.ensure_future(first.send("caption en", image))
        await _running(gated_server, "chat")  # held at the gate
        waiting = asyncio.ensure_future(leaver.send("detect dog", image))
        await leaver.wait_for(
            lambda: any("Waiting for the model" in m["output"] for m in leaver.messages)
        )
        await leaver.close()  # the person leaves while waiting
        await until(lambda: queue_state(gated_server)["waiting"]["chat"] == 0, "drop")
        waiting.cancel()
        async with httpx.AsyncClient(base_url=gated_server.url, timeout=60) as http:
            hung_up = asyncio.ensure_future(
                http.post(
                    "/segment",
                    data={"prompt": "detect cat"},
                    files={"image_file": ("cat.png", png_bytes(), "image/png")},
                )
            )
            await until(lambda: queue_state(gated_server)["waiting"]["api"] == 1, "api")
            hung_up.cancel()  # the script hangs up: its connection closes
            await until(
                lambda: queue_state(gated_server)["waiting"]["api"] == 0, "gone"
            )
        gated_server.release(6)  # exactly the pieces of the first answer
        replies = await answered
        assert CAPTION in replies[-1]["output"]
    finally:
        await first.close()
    await until(lambda: idle(gated_server), "an empty queue", 10)
    prompts = {c["prompt"] for c in calls(gated_server.call_log)}
    assert "detect dog" not in prompts and "detect cat" not in prompts
    assert "caption en" in prompts


async def test_a_brief_drop_keeps_the_request_and_the_answer_arrives(gated_server):
    client = ChatClient(gated_server.url)
    await client.connect()
    try:
        sent = asyncio.ensure_future(
            client.send("caption en", [("photo.png", png_bytes())])
        )
        await _running(gated_server, "chat")  # held at the gate
        await client.reconnect()  # a new socket, the same session id
        # the grace timer (DISCONNECT_GRACE_S=3) has run out and spared it
        await until(lambda: "came back within 3 s" in gated_server.log(), "grace")
        gated_server.release(6)
        await client.wait_for(
            lambda: any(CAPTION in m["output"] for m in client.assistant_messages()),
            timeout_s=60,
        )
        sent.cancel()  # it waited for a task end the reconnect already sent
    finally:
        await client.close()
    await until(lambda: idle(gated_server), "an empty queue", 10)
    ends = [
        c["event"] for c in calls(gated_server.call_log) if c["prompt"] == "caption en"
    ]
    assert ends[-1] == "done", ends


async def test_stop_ends_the_generation_within_one_token_and_frees_the_worker(
    gated_server,
):
    chat = ChatClient(gated_server.url)
    await chat.connect()
    image = [("photo.png", png_bytes())]
    try:
        before = len(calls(gated_server.call_log))
        running = asyncio.ensure_future(chat.send("caption en", image))
        await _running(gated_server, "chat")
        gated_server.release(1)  # one piece of the answer
        await chat.wait_for(lambda: any(chat.streams.values()))
        tasks_before = chat.tasks_ended
        await chat.sio.emit("stop")
        await chat.wait_for(lambda: chat.tasks_ended > tasks_before)  # cancelled
        await running
        gated_server.release(1)  # the model's next token: it sees the cancel
        await until(lambda: idle(gated_server), "the worker to be free", 10)
        stopped = calls(gated_server.call_log)[before:]
        assert stopped[-1] == {
            "prompt": "caption en",
            "event": "cancelled",
            "pieces": 1,
        }
        gated_server.release(6)  # the worker runs the next request in full
        replies = await chat.send("caption en", timeout_s=60)
        assert CAPTION in replies[-1]["output"]
    finally:
        await chat.close()


async def test_a_person_may_have_two_requests_in_line_and_hears_why_not_three(
    gated_server,
):
    chat = ChatClient(gated_server.url)
    await chat.connect()
    try:
        first = asyncio.ensure_future(
            chat.send("caption en", [("photo.png", png_bytes())])
        )
        await _running(gated_server, "chat")
        second = asyncio.ensure_future(chat.send("detect dog"))
        await until(lambda: queue_state(gated_server)["waiting"]["chat"] == 1, "2nd")
        await chat.send("detect cat")  # refused at once, with the reason
        outputs = [m["output"] for m in chat.assistant_messages()]
        assert any("already have 2 requests waiting" in o for o in outputs)
        gated_server.release(6 + 5)  # both answers, piece by piece
        await asyncio.gather(first, second)  # ended (tasks end in any order)

        def answered(text: str) -> bool:
            return any(text in m["output"] for m in chat.assistant_messages())

        await chat.wait_for(lambda: answered(CAPTION) and answered("`detect dog`"))
    finally:
        await chat.close()
    await until(lambda: idle(gated_server), "an empty queue", 10)
    assert "detect cat" not in {c["prompt"] for c in calls(gated_server.call_log)}
