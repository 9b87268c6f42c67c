"""Attack: open another user's thread by spelling its id differently.

Alice chats in her thread; Bob knows its id (it is in the page URL) and tries
every other spelling that ``uuid.UUID`` reads as the same id (upper case,
braces, ``urn:uuid:``, no hyphens, mixed case) through the socket resume, the
``/project/thread*`` and ``/project/share`` routes, and a chat of his own under
that id followed by deleting "his" thread. Every door must refuse, and Alice's
files, state.json and history must stay as they were. Runs on SQLite and, where
its server binaries are installed, on PostgreSQL (which itself reads some
spellings as the UUID and rejects others).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import socketio

from core.persist.auth import hash_password
from tests.security.auth_helpers import login, png, replay_env, run_server
from tests.support.chat_client import ServerProcess
from tests.support.history import AuthChatClient, history_database

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
ALICE_THREAD = "8c1f3c52-1a4b-4f7e-9d55-0a4b8e0e6c11"  # letters in every group
SPELLINGS = {
    "upper": ALICE_THREAD.upper(),
    "braces": "{" + ALICE_THREAD + "}",
    "urn": "urn:uuid:" + ALICE_THREAD,
    "no hyphens": ALICE_THREAD.replace("-", ""),
    "mixed case": ALICE_THREAD[:19] + ALICE_THREAD[19:].upper(),
}
REFUSAL = "lowercase hyphenated UUIDs"


@dataclass
class World:
    server: ServerProcess
    tokens: dict[str, str]
    folder: Path  # Alice's thread folder
    before: dict[str, str]  # file name -> sha256 of Alice's thread folder
    overlay_id: str


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
    }


def _cookies(token: str) -> dict[str, str]:
    return {"access_token": token}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request):
    with history_database(request.param) as url:
        yield url


async def _first_chat(url: str, token: str) -> str:
    """Alice's first message in ALICE_THREAD; returns the reply's text."""
    alice = AuthChatClient(url, token, ALICE_THREAD)
    await alice.connect()
    try:
        replies = await alice.send("segment the cat", [("cat.png", png())])
    finally:
        await alice.close()
    return replies[-1]["output"]


@pytest.fixture(scope="module")
def world(database, synthetic_vae_path, tmp_path_factory):
    """A server with history on; Alice has chatted once in ALICE_THREAD."""
    folder = tmp_path_factory.mktemp("thread-ids")
    users = ",".join(f"{n}:{hash_password(PASSWORD)}" for n in ("alice", "bob"))
    env = replay_env(
        folder, synthetic_vae_path, AUTH_USERS=users, DATABASE_URL=database
    )
    server = run_server(env, folder / "server.log")
    try:
        tokens = {}
        for name in ("alice", "bob"):
            response = login(server.url, name, PASSWORD)
            assert response.status_code == 200, response.text
            tokens[name] = response.cookies["access_token"]
        reply = asyncio.run(_first_chat(server.url, tokens["alice"]))
        assert "`segment cat`" in reply, server.log()[-3000:]
        shown = httpx.get(
            f"{server.url}/project/thread/{ALICE_THREAD}",
            cookies=_cookies(tokens["alice"]),
        )
        assert shown.status_code == 200, shown.text
        overlays = [e["id"] for e in shown.json()["elements"] if "overlay" in e["name"]]
        assert overlays, shown.json()["elements"]
        threads = Path(env["DATA_DIR"]) / "threads" / ALICE_THREAD
        assert (threads / "state.json").is_file()
        yield World(server, tokens, threads, _digests(threads), overlays[0])
    finally:
        server.stop()


def _assert_alice_untouched(world: World) -> None:
    assert world.folder.is_dir(), "Alice's thread folder was deleted"
    assert _digests(world.folder) == world.before, "Alice's files changed"
    shown = httpx.get(
        f"{world.server.url}/project/thread/{ALICE_THREAD}",
        cookies=_cookies(world.tokens["alice"]),
    )
    assert shown.status_code == 200, shown.text
    assert [s["output"] for s in shown.json()["steps"] if s["type"] == "user_message"]
    assert shown.json()["userIdentifier"] == "alice"


@pytest.mark.parametrize("kind", SPELLINGS)
async def test_socket_resume_by_another_spelling_is_refused(world, kind):
    tab = AuthChatClient(world.server.url, world.tokens["bob"], SPELLINGS[kind])
    with pytest.raises(socketio.exceptions.ConnectionError):
        await tab.connect(resume=True)
    if tab.sio.eio.http is not None:  # the refused handshake's HTTP session
        await tab.sio.eio.http.close()
    assert f"threadId {SPELLINGS[kind]!r} refused" in world.server.log()
    _assert_alice_untouched(world)


@pytest.mark.parametrize("user", ["bob", "alice"])  # even her own id: one spelling
@pytest.mark.parametrize("kind", SPELLINGS)
def test_thread_routes_refuse_another_spelling(world, kind, user):
    spelling = SPELLINGS[kind]
    requests = [
        ("GET", f"/project/thread/{spelling}", None),
        ("GET", f"/project/thread/{spelling}/element/{world.overlay_id}", None),
        ("GET", f"/project/share/{spelling}", None),
        ("PUT", "/project/thread", {"threadId": spelling, "name": "pwned"}),
        ("PUT", "/project/thread/share", {"threadId": spelling, "isShared": True}),
        ("DELETE", "/project/thread", {"threadId": spelling}),
    ]
    for method, path, body in requests:
        response = httpx.request(
            method,
            world.server.url + path,
            json=body,
            cookies=_cookies(world.tokens[user]),
        )
        assert response.status_code == 400, (method, path, response.text)
        assert REFUSAL in response.text, response.text
    _assert_alice_untouched(world)


async def _chat_and_delete_as(world: World, user: str, thread_id: str) -> str:
    """Open ``thread_id`` as ``user``, chat in it and delete it, as far as the
    server lets; returns where it stopped."""
    tab = AuthChatClient(world.server.url, world.tokens[user], thread_id)
    try:
        await tab.connect()
    except socketio.exceptions.ConnectionError:
        if tab.sio.eio.http is not None:
            await tab.sio.eio.http.close()
        return "socket refused"
    try:
        await tab.send("segment the cat", [("mine.png", png("blue"))])
    finally:
        await tab.close()
    response = httpx.request(
        "DELETE",
        f"{world.server.url}/project/thread",
        json={"threadId": thread_id},
        cookies=_cookies(world.tokens[user]),
    )
    return f"delete answered {response.status_code}"


async def test_a_chat_under_another_spelling_never_reaches_alices_thread(world):
    stops = {
        kind: await _chat_and_delete_as(world, "bob", spelling)
        for kind, spelling in SPELLINGS.items()
    }
    _assert_alice_untouched(world)
    assert set(stops.values()) == {"socket refused"}, stops
    listed = httpx.post(
        f"{world.server.url}/project/threads",
        json={"pagination": {"first": 50}, "filter": {}},
        cookies=_cookies(world.tokens["bob"]),
    )
    assert listed.status_code == 200, listed.text
    ids = {t["id"] for t in listed.json()["data"]}
    assert not ids & {ALICE_THREAD, *SPELLINGS.values()}, ids

    # Alice's own thread still resumes, with her photo's answer.
    alice = AuthChatClient(world.server.url, world.tokens["alice"], ALICE_THREAD)
    await alice.connect(resume=True)
    await alice.close()
    outputs = [s.get("output", "") for s in alice.resumed["steps"]]
    assert any("`segment cat`" in text for text in outputs), outputs
