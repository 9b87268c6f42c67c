"""The chat history's data layer when its database fails or hangs.

Chainlit's SQLAlchemy layer logged every database error and went on, so a
stopped database lost the thread unseen, and a hung one held the turn (30 s
flush) and the login. Here the real ``AppDataLayer`` runs against a database
that hangs (a stand-in PostgreSQL port that takes connections and never
answers, as a SIGSTOPped server does) or goes away (its connections refused)
and comes back.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest
from chainlit.context import init_http_context
from chainlit.user import User
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import sessionmaker

from chat.persist.db import AppDataLayer
from chat.persist.storage import LocalStorageClient
from core.persist.locations import async_database_url
from core.readiness import _history_check

TIMEOUT_S = 0.5  # HISTORY_WRITE_TIMEOUT_S of these layers
MARGIN_S = 1.5
REFUSED = "postgresql+asyncpg://app@127.0.0.1:9/chat"  # nothing listens on 9


@pytest.fixture
def hung_port():
    """A port that accepts connections (the kernel's backlog) and never
    answers a byte: a PostgreSQL server stopped with SIGSTOP."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def make_layer(url: str, tmp_path) -> AppDataLayer:
    storage = LocalStorageClient(tmp_path / "files", "k" * 40)
    return AppDataLayer(url, storage, tmp_path / "threads", write_timeout_s=TIMEOUT_S)


@pytest.fixture
async def layer(tmp_path):
    data_layer = make_layer(async_database_url(None, tmp_path), tmp_path)
    data_layer.outbox.retry_every_s = 0.05
    await data_layer.create_schema()
    init_http_context()  # Chainlit's writes look at the current session
    yield data_layer
    data_layer.outbox.close()
    await data_layer.engine.dispose()


def sessions_to(url: str):
    engine = create_async_engine(url)
    return sessionmaker(bind=engine, expire_on_commit=False, class_=AsyncSession)


def steps_of(thread_id: str) -> list[dict]:
    base = {"threadId": thread_id, "streaming": False, "metadata": {}}
    return [
        {**base, "id": str(uuid.uuid4()), "name": "User", "type": "user_message"},
        {**base, "id": str(uuid.uuid4()), "name": "Bot", "type": "assistant_message"},
    ]


async def test_a_hung_database_holds_neither_the_turn_nor_the_login(
    tmp_path, hung_port
):
    layer = make_layer(f"postgresql+asyncpg://app@127.0.0.1:{hung_port}/chat", tmp_path)
    init_http_context()
    thread_id = str(uuid.uuid4())
    started = time.monotonic()
    async with asyncio.timeout(20):  # the old code waited 30 s, then forever
        tasks = [  # fired like Chainlit does: not awaited
            asyncio.create_task(layer.update_thread(thread_id, name="t")),
            *(asyncio.create_task(layer.create_step(s)) for s in steps_of(thread_id)),
        ]
        await layer.flush()
        flushed_s = time.monotonic() - started
        await asyncio.gather(*tasks)
        login_started = time.monotonic()
        assert await layer.create_user(User(identifier="alice")) is None
        login_s = time.monotonic() - login_started
    assert flushed_s < TIMEOUT_S + MARGIN_S, flushed_s
    assert login_s < TIMEOUT_S + MARGIN_S, login_s
    assert not layer.outbox.saving and layer.outbox.outage == 1
    assert layer.outbox.pending == 3  # kept for when it answers again
    layer.outbox.close()
    await layer.engine.dispose()


async def test_writes_made_while_the_database_is_away_are_saved_when_it_is_back(
    layer,
):
    alice = await layer.create_user(User(identifier="alice"))
    working = layer.async_session
    layer.async_session = sessions_to(REFUSED)  # the database stops
    thread_id = str(uuid.uuid4())
    first, answer = steps_of(thread_id)
    tasks = [
        asyncio.create_task(layer.update_thread(thread_id, "cat", alice.id)),
        asyncio.create_task(layer.create_step({**first, "output": "segment cat"})),
        asyncio.create_task(layer.create_step({**answer, "output": ""})),
        asyncio.create_task(layer.update_step({**answer, "output": "1 cat"})),
    ]
    assert await layer.flush()
    await asyncio.gather(*tasks)
    assert not layer.outbox.saving and layer.outbox.pending == 4
    assert await layer.get_thread(thread_id) is None  # nothing is readable
    with pytest.raises(RuntimeError, match="4 chat history write"):  # /ready: 503
        await _history_check(layer)()
    # The chat's owner still resolves (a new socket's login check).
    assert (await layer.get_user("alice")).id == alice.id

    layer.async_session = working  # the database is back
    async with asyncio.timeout(10):
        while not layer.outbox.saving:  # the background retry replays them
            await asyncio.sleep(0.02)
    await _history_check(layer)()  # /ready: the history is fine again
    thread = await layer.get_thread(thread_id)
    assert thread["userIdentifier"] == "alice"  # its owner can reopen it
    outputs = {s["id"]: s["output"] for s in thread["steps"]}
    assert outputs == {first["id"]: "segment cat", answer["id"]: "1 cat"}


async def test_one_failed_write_is_retried_at_once_and_nothing_is_reported(layer):
    working, refused = layer.async_session, sessions_to(REFUSED)
    calls = []

    def flaky():  # the first connection is dead (a restarted server's pool)
        calls.append(1)
        return (refused if len(calls) == 1 else working)()

    layer.async_session = flaky
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name="t")
    assert layer.outbox.saving and layer.outbox.outage == 0
    layer.async_session = working
    assert (await layer.get_thread(thread_id))["name"] == "t"


async def test_the_queue_is_bounded_per_thread(layer):
    layer.outbox.per_thread = 3
    layer.async_session = sessions_to(REFUSED)
    thread_id = str(uuid.uuid4())
    for number in range(5):
        await layer.update_thread(thread_id, name=f"name {number}")
    assert layer.outbox.pending == 3 and layer.outbox.dropped == 2
