"""A thread folder that cannot be written: the answer is still shown.

The real server (login and history on, SQLite, replay model). After a first
answer, the thread's folder under DATA_DIR/threads stops taking writes
(``chattr +i``: as root, permission bits do not stop writes; where chattr is
not supported, the folder is swapped for a regular file). The next answer
comes with its overlay (from memory) and a short "Not saved" note, "export"
says the same instead of a raw error, and no socket event carries a local
path or an errno text. Once the folder takes writes again, the next answer
saves the whole state: what the history shows and what ``state.json`` holds
agree again.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from core.persist.auth import hash_password
from tests.e2e.test_persistence_e2e import PASSWORD, token_of
from tests.recorded import REPLAY_RECORDING
from tests.support.history import AuthChatClient

pytestmark = pytest.mark.e2e

NOT_SAVED = "Not saved: the storage is not writable"


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[None]:
    """``folder`` refuses new files (EPERM) while inside; as it was after."""
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)]).returncode == 0:
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(folder)], check=True)
        return
    aside = folder.with_name(folder.name + ".aside")  # no chattr: a file in its place
    folder.rename(aside)
    folder.write_bytes(b"")
    try:
        yield
    finally:
        folder.unlink()
        aside.rename(folder)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "orange").save(buffer, format="PNG")
    return buffer.getvalue()


def outputs(messages) -> str:
    return "\n".join(m.get("output", "") for m in messages)


def everything_sent(chat: AuthChatClient) -> str:
    return json.dumps([chat.messages, chat.steps, chat.elements, chat.streams])


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(
        recording=REPLAY_RECORDING,
        AUTH_USERS=f"alice:{hash_password(PASSWORD)}",
        RATE_LIMIT="0",
    )


async def test_an_unwritable_thread_folder_shows_the_answer_with_a_note(server):
    token = token_of(server.url)
    chat = AuthChatClient(server.url, token)
    await chat.connect()
    await chat.send("segment the cat", [("cat.png", png())])
    folder = server.data_dir / "threads" / chat.thread_id
    assert (folder / "state.json").exists()

    with unwritable(folder):
        boxes = await chat.send("now as boxes")
        export = await chat.send("export")
    (answer,) = [m for m in boxes if "`detect cat`" in m["output"]]
    assert NOT_SAVED in answer["output"]
    shown = [e for e in chat.elements if e.get("forId") == answer["id"]]
    assert [e["type"] for e in shown] == ["image"]  # the overlay, from memory
    assert "No export files" in outputs(export) and "not writable" in outputs(export)
    sent = everything_sent(chat)
    assert str(server.data_dir) not in sent and "Errno" not in sent
    assert "/threads/" not in sent

    after = await chat.send("also the dog")  # the storage works again
    assert "`detect cat ; dog`" in outputs(after)
    assert "Not saved" not in outputs(after)
    state = json.loads((folder / "state.json").read_text())
    prompts = [turn["intent"]["prompt"] for turn in state["conversation"]["turns"]]
    assert prompts == ["segment cat", "detect cat", "detect cat ; dog"]
    await chat.close()

    again = AuthChatClient(server.url, token, chat.thread_id)
    await again.connect(resume=True)
    history = outputs(again.resumed["steps"])
    for prompt in prompts:  # the history shows what the state holds
        assert f"`{prompt}`" in history
    await again.close()
