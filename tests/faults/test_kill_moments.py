"""Nothing the user saw is lost when the server process dies (kill -9).

The real Chainlit server with login and history (SQLite, and PostgreSQL where
its server binaries are installed) runs the replay model behind a FIFO gate
(core.engine.replay): the model starts a prompt, logs it, and waits for one
byte per answer piece, so each test holds the server exactly where it wants
to kill it. After the kill a new server starts on the same DATA_DIR and
database, the same user resumes the thread, and the test checks what they
see. One server per database runs through the module: each test kills the
one it finds and leaves the restarted one to the next.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from core.engine.replay import PIECE
from core.persist.auth import hash_password
from tests.e2e.test_persistence_e2e import PASSWORD, generating_inputs, token_of
from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ServerProcess, start_server
from tests.support.history import AuthChatClient, find_pg_bin, postgres_cluster

pytestmark = pytest.mark.e2e

CAR = "<loc0300><loc0100><loc0800><loc0900> car"
RECORDING = {
    **REPLAY_RECORDING,
    "detect cat ; car": "<loc0100><loc0100><loc0700><loc0500> cat ; " + CAR,
    "segment cat ; car": REPLAY_RECORDING["segment cat"] + " ; " + CAR,
}
ATTACH_FIRST = "Attach a photo first"


def photo(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


class GatedServers:
    """The server of one database, its gate and its model's call log; kills
    and restarts it on the same DATA_DIR."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.call_log = folder / "calls.jsonl"
        gate = folder / "gate"
        os.mkfifo(gate)
        self._gate = os.open(gate, os.O_RDWR)  # never blocks; the model reads
        recording = folder / "recording.json"
        options = {"gate": str(gate), "call_log": str(self.call_log)}
        recording.write_text(json.dumps({"answers": RECORDING, **options}))
        self.env["MODEL_ID"] = f"replay:{recording}"
        self.starts = 0
        self.server = self._start()
        self.token = token_of(self.server.url)

    def _start(self) -> ServerProcess:
        self.starts += 1
        server = start_server(self.env, self.folder / f"server-{self.starts}.log")
        server.wait_ready()
        return server

    @property
    def url(self) -> str:
        return self.server.url

    def kill_and_restart(self) -> None:
        """SIGKILL: no handler, no finally, no flush runs."""
        self.server.process.kill()
        self.server.process.wait()
        self.server = self._start()

    def starts_seen(self) -> list[str]:
        if not self.call_log.exists():
            return []
        lines = self.call_log.read_text().splitlines()
        return [c["prompt"] for c in map(json.loads, lines) if c["event"] == "start"]

    async def next_start(self, seen: int, timeout_s: float = 60) -> str:
        """The prompt of the model's generation number ``seen + 1`` (0-based
        count of generations before it), once it has started."""
        deadline = time.monotonic() + timeout_s
        while len(starts := self.starts_seen()) <= seen:
            assert time.monotonic() < deadline, "the model was never asked"
            await asyncio.sleep(0.02)
        return starts[seen]

    def release(self, prompt: str) -> None:
        """Let the model answer ``prompt`` in full (one byte per piece)."""
        os.write(self._gate, b"x" * len(PIECE.findall(RECORDING[prompt])))

    def stop(self) -> None:
        self.server.stop()
        os.close(self._gate)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def servers(request, synthetic_vae_path, tmp_path_factory):
    users = f"alice:{hash_password(PASSWORD)}"
    env = {
        "AUTH_USERS": users,
        "VAE_PATH": str(synthetic_vae_path),
        "HF_HUB_OFFLINE": "1",
        "RATE_LIMIT": "0",
    }
    folder = tmp_path_factory.mktemp(f"faults-{request.param}")
    env["DATA_DIR"] = str(folder / "data")
    if request.param == "sqlite":
        gated = GatedServers(folder, env)
        yield gated
        gated.stop()
        return
    if find_pg_bin() is None:
        pytest.skip("no PostgreSQL server binaries: apt-get install postgresql")
    with postgres_cluster() as url:
        gated = GatedServers(folder, {**env, "DATABASE_URL": url})
        yield gated
        gated.stop()


async def ask(servers: GatedServers, chat: AuthChatClient, text: str, files=()):
    """Send ``text``; release the model for whatever prompt it runs; the replies."""
    seen = len(servers.starts_seen())
    sending = asyncio.ensure_future(chat.send(text, list(files), timeout_s=60))
    while not sending.done():
        if len(servers.starts_seen()) > seen:
            servers.release(servers.starts_seen()[seen])
            seen += 1
        await asyncio.sleep(0.02)
    return sending.result()


async def new_chat(servers: GatedServers) -> AuthChatClient:
    chat = AuthChatClient(servers.url, servers.token)
    await chat.connect()
    return chat


async def resumed(servers: GatedServers, thread_id: str) -> AuthChatClient:
    chat = AuthChatClient(servers.url, servers.token, thread_id)
    await chat.connect(resume=True)
    return chat


def outputs(replies) -> str:
    return "\n".join(m.get("output", "") for m in replies)


async def test_killed_as_the_answer_arrives_the_refinement_uses_that_answer(
    servers,
):
    chat = await new_chat(servers)
    await ask(servers, chat, "segment the cat", [("cat.png", photo("orange"))])
    seen = len(servers.starts_seen())
    boxes = asyncio.ensure_future(chat.send("now as boxes", timeout_s=60))
    assert await servers.next_start(seen) == "detect cat"
    before = len(chat.assistant_messages())
    servers.release("detect cat")
    await chat.wait_for(
        lambda: any(
            "`detect cat`" in m.get("output", "")
            for m in chat.assistant_messages()[before:]
        )
    )
    servers.kill_and_restart()  # the user has just seen the boxes
    boxes.cancel()
    await chat.close()
    again = await resumed(servers, chat.thread_id)
    replies = await ask(servers, again, "also the car")
    assert generating_inputs(again) == ["detect cat ; car"], outputs(replies)
    await again.close()


async def test_killed_during_the_first_answer_the_photo_is_kept(servers):
    chat = await new_chat(servers)
    seen = len(servers.starts_seen())
    first = asyncio.ensure_future(
        chat.send("segment the cat", [("cat.png", photo("orange"))], timeout_s=60)
    )
    assert await servers.next_start(seen) == "segment cat"  # photo accepted
    servers.kill_and_restart()
    first.cancel()
    await chat.close()
    again = await resumed(servers, chat.thread_id)
    notices = outputs(again.assistant_messages())
    replies = await ask(servers, again, "segment the cat")
    assert ATTACH_FIRST not in outputs(replies), notices
    assert generating_inputs(again) == ["segment cat"]
    assert "cat.png" in replies[-1]["output"]
    await again.close()


async def test_killed_while_a_second_photo_is_analysed_it_is_kept(servers):
    chat = await new_chat(servers)
    await ask(servers, chat, "segment the cat", [("cat.png", photo("orange"))])
    seen = len(servers.starts_seen())
    second = asyncio.ensure_future(
        chat.send("detect the car", [("car.png", photo("blue"))], timeout_s=60)
    )
    assert await servers.next_start(seen) == "detect car"
    servers.kill_and_restart()
    second.cancel()
    await chat.close()
    again = await resumed(servers, chat.thread_id)
    replies = await ask(servers, again, "detect the car")
    assert generating_inputs(again) == ["detect car"], outputs(replies)
    assert "car.png" in replies[-1]["output"]  # the new photo, not cat.png
    await again.close()


async def test_killed_between_the_answers_of_two_photos_both_are_kept(servers):
    chat = await new_chat(servers)
    await ask(servers, chat, "segment the cat", [("old.png", photo("orange"))])
    seen = len(servers.starts_seen())
    two = [("a.png", photo("green")), ("b.png", photo("purple"))]
    both = asyncio.ensure_future(chat.send("detect the cat", two, timeout_s=60))
    assert await servers.next_start(seen) == "detect cat"
    servers.release("detect cat")
    assert await servers.next_start(seen + 1) == "detect cat"  # the 2nd photo
    await chat.wait_for(lambda: "`detect cat`" in outputs(chat.assistant_messages()))
    assert "a.png" in outputs(chat.assistant_messages())  # the user saw it
    servers.kill_and_restart()
    both.cancel()
    await chat.close()
    again = await resumed(servers, chat.thread_id)
    replies = await ask(servers, again, "also the car")
    said = outputs(replies)
    # both new photos, refined from the answer the user saw; not old.png
    assert generating_inputs(again) == ["detect cat ; car"] * 2, said
    assert "a.png" in said and "b.png" in said and "old.png" not in said
    await again.close()
