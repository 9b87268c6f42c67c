"""The chat history's database stops or hangs while people chat (PostgreSQL).

The real server (login on, history on a throwaway PostgreSQL, replay model):
- stopped (``pg_ctl stop -m fast``) mid-chat: answers still come, the chat
  says once that the history is not being saved, and after the database
  starts again both the chat that went on and one started during the outage
  reopen for their owner with every turn (Chainlit's layer only logged
  warnings: "Thread not found", and a thread started then refused for good);
- hung (SIGSTOP on its processes): a turn ends, and /login answers, within
  HISTORY_WRITE_TIMEOUT_S and a margin (the turn was held 30 s, the login
  longer), and what was said is saved once it thaws.
"""

from __future__ import annotations

import asyncio
import io
import signal
import time

import httpx
import pytest
from PIL import Image

from core.persist.auth import hash_password
from tests.e2e.test_persistence_e2e import PASSWORD, token_of
from tests.recorded import REPLAY_RECORDING
from tests.support.history import AuthChatClient, find_pg_bin, postgres_server

pytestmark = pytest.mark.e2e

WRITE_TIMEOUT_S = 2.0
MARGIN_S = 4.0  # the replay model, the password hash, a busy 2-core machine
NOT_SAVED = "history is not being saved right now"


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def database():
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL server binaries: apt-get install postgresql")
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def server(app_server, database):
    return app_server(
        recording={
            **REPLAY_RECORDING,
            "detect cat ; car": REPLAY_RECORDING["detect cat"],
        },
        AUTH_USERS=f"alice:{hash_password(PASSWORD)}",
        DATABASE_URL=database.url,
        HISTORY_WRITE_TIMEOUT_S=str(WRITE_TIMEOUT_S),
        RATE_LIMIT="0",
    )


def outputs(messages) -> str:
    return "\n".join(m.get("output", "") for m in messages)


async def reopened(url: str, token: str, thread_id: str, *prompts: str) -> str:
    """What the thread shows when its owner reopens it, once it shows the
    answers to ``prompts`` (the kept writes land within seconds)."""
    deadline = time.monotonic() + 20
    while True:
        chat = AuthChatClient(url, token, thread_id)
        try:
            await chat.connect(resume=True)
            said = outputs(chat.resumed["steps"])
        except AssertionError as exc:  # "Thread not found"
            said = str(exc)
        finally:
            await chat.close()
        if all(f"`{prompt}`" in said for prompt in prompts):
            return said
        assert time.monotonic() < deadline, f"not saved {prompts}: {said}"
        await asyncio.sleep(0.5)


async def test_a_stopped_database_is_said_and_every_thread_saved_when_back(
    server, database
):
    token = token_of(server.url)
    chat = AuthChatClient(server.url, token)
    await chat.connect()
    first = await chat.send("segment the cat", [("cat.png", png("orange"))])
    assert NOT_SAVED not in outputs(first)

    database.stop("fast")
    during = await chat.send("now as boxes")
    assert "`detect cat`" in outputs(during)  # the answer still comes
    assert NOT_SAVED in outputs(during)
    fresh = AuthChatClient(server.url, token)  # a chat started while it is away
    await fresh.connect()
    started = await fresh.send("detect the car", [("car.png", png("blue"))])
    assert "`detect car`" in outputs(started) and NOT_SAVED in outputs(started)
    again = await chat.send("detect the cat")  # told once per outage
    assert NOT_SAVED not in outputs(again)

    database.start()
    after = await chat.send("also the car")
    assert "`detect cat ; car`" in outputs(after)
    await fresh.send("segment the car")
    for tab in (chat, fresh):
        await tab.close()

    said = await reopened(
        server.url,
        token,
        chat.thread_id,
        "segment cat",
        "detect cat",
        "detect cat ; car",
    )
    assert said.count("`detect cat`") == 2, said  # the turn said once
    await reopened(server.url, token, fresh.thread_id, "detect car", "segment car")


async def test_a_hung_database_holds_neither_a_turn_nor_the_login(server, database):
    token = token_of(server.url)
    chat = AuthChatClient(server.url, token)
    await chat.connect()
    await chat.send("segment the cat", [("cat.png", png("orange"))])
    database.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        during = await chat.send("now as boxes", timeout_s=60)
        turn_s = time.monotonic() - started
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            login = await http.post(
                "/login", data={"username": "alice", "password": PASSWORD}
            )
        login_s = time.monotonic() - started
    finally:
        database.signal(signal.SIGCONT)
    assert turn_s < WRITE_TIMEOUT_S + MARGIN_S, turn_s
    assert login.status_code == 200 and login_s < WRITE_TIMEOUT_S + MARGIN_S, login_s
    assert "`detect cat`" in outputs(during) and NOT_SAVED in outputs(during)
    await chat.close()
    await reopened(server.url, token, chat.thread_id, "segment cat", "detect cat")
