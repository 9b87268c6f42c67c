"""Persisted history over the real server and a real database: log in, chat,
disconnect, resume and refine, restart the server and resume again, delete the
thread and see its files go. Runs on SQLite (the default file in DATA_DIR) and,
where PostgreSQL's server binaries are installed, on a throwaway PostgreSQL."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
import socketio
from PIL import Image

from core.persist.auth import hash_password
from tests.recorded import REPLAY_CAT, REPLAY_RECORDING
from tests.support.chat_client import ChatClient
from tests.support.history import AuthChatClient, history_database

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
PHOTO_WH = (320, 240)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", PHOTO_WH, "orange").save(buffer, format="PNG")
    return buffer.getvalue()


def login(url: str, name: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/login", data={"username": name, "password": password})


def token_of(url: str, name: str = "alice") -> str:
    response = login(url, name, PASSWORD)
    assert response.status_code == 200, response.text
    return response.cookies["access_token"]


def generating_inputs(client: ChatClient) -> list[str]:
    seen: dict[str, str] = {}
    for step in client.messages + client.steps:
        if step.get("name") == "generating":
            seen[step["id"]] = step.get("input", "")
    return list(seen.values())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request):
    """(kind, DATABASE_URL or "" for the default SQLite file in DATA_DIR)."""
    with history_database(request.param) as url:
        yield request.param, url


@pytest.fixture(scope="module")
def app_env(database) -> dict[str, str]:
    """What the two servers of a test get besides app_server's defaults."""
    users = f"alice:{hash_password(PASSWORD)},bob:{hash_password(PASSWORD)}"
    return {"AUTH_USERS": users, "DATABASE_URL": database[1]}


@pytest.fixture
def run_server(app_server, tmp_path):
    """Start (or restart on the same DATA_DIR) a server with history on."""

    def run(env: dict[str, str], name: str):
        return app_server(recording=REPLAY_RECORDING, name=name, folder=tmp_path, **env)

    return run


async def test_resume_refine_restart_and_delete(app_env, run_server, tmp_path):
    data_dir = tmp_path / "data"
    server = run_server(app_env, "first")
    try:
        assert login(server.url, "alice", "wrong").status_code == 401
        assert login(server.url, "mallory", PASSWORD).status_code == 401
        token = token_of(server.url)
        assert (data_dir / "auth-secret").is_file()  # generated on first run
        if not app_env["DATABASE_URL"]:
            assert (data_dir / "chat.db").is_file()  # SQLite file created

        first = AuthChatClient(server.url, token)
        await first.connect()
        replies = await first.send("segment the cat", [("cat.png", png_bytes())])
        assert generating_inputs(first) == ["segment cat"], server.log()[-3000:]
        assert "`segment cat`" in replies[-1]["output"]
        thread_id = first.thread_id
        await first.close()

        again = AuthChatClient(server.url, token, thread_id)
        await again.connect(resume=True)
        outputs = [s.get("output", "") for s in again.resumed["steps"]]
        assert any("`segment cat`" in text for text in outputs)
        (step,) = [s for s in again.resumed["steps"] if s["name"] == "generating"]
        # the raw model text survives the reload
        assert (step["input"], step["output"]) == ("segment cat", REPLAY_CAT)
        overlay = _overlay_element(again.resumed)
        shown = httpx.get(server.url + overlay["url"])
        assert shown.status_code == 200, shown.text
        assert shown.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(shown.content)).size == PHOTO_WH
        tampered = overlay["url"].replace("sig=", "sig=0")
        assert httpx.get(server.url + tampered).status_code == 403

        replies = await again.send("also the dog")  # the last intent came back
        assert generating_inputs(again) == ["segment cat ; dog"]
        rows = [ln for ln in replies[-1]["output"].splitlines() if ln.startswith("| ")]
        assert [row.split(" | ")[1] for row in rows[1:]] == ["cat", "dog"]
        await again.close()

        intruder = AuthChatClient(server.url, token_of(server.url, "bob"), thread_id)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await intruder.connect(resume=True)  # bob may not open alice's chat
        assert "Authorization for the thread failed" in server.log()
    finally:
        server.stop()

    server = run_server(app_env, "restarted")
    try:
        after = AuthChatClient(server.url, token, thread_id)  # same cookie still valid
        await after.connect(resume=True)
        replies = await after.send("now as boxes")
        assert generating_inputs(after) == ["detect cat ; dog"]
        assert "cat.png" in replies[-1]["output"]
        await after.close()
        keys = [e["objectKey"] for e in after.resumed["elements"] if e["objectKey"]]
        folder = data_dir / "threads" / thread_id
        stored = [data_dir / "files" / key for key in keys]
        assert (folder / "state.json").is_file()
        # The photo's display copy, model input and original bytes (chat.photos).
        for name in ("001.jpg", "001.model.jpg", "001.orig"):
            assert (folder / name).is_file(), sorted(p.name for p in folder.iterdir())
        assert stored and all(path.is_file() for path in stored)

        # A partial, hand-edited state.json: the chat says what it lost and
        # the thread goes on.
        (folder / "state.json").write_text('{"conversation": []}')
        broken = AuthChatClient(server.url, token, thread_id)
        await broken.connect(resume=True)
        notices = [m["output"] for m in broken.assistant_messages()]
        assert any("could not be restored" in text for text in notices), notices
        replies = await broken.send("segment the cat", [("cat.png", png_bytes())])
        assert generating_inputs(broken) == ["segment cat"], server.log()[-3000:]
        assert "`segment cat`" in replies[-1]["output"]
        await broken.close()

        cookies = {"access_token": token}
        response = httpx.request(
            "DELETE",
            f"{server.url}/project/thread",
            json={"threadId": thread_id},
            cookies=cookies,
        )
        assert response.status_code == 200, response.text
        assert not folder.exists()
        assert not any(path.exists() for path in stored)
        listed = httpx.post(
            f"{server.url}/project/threads",
            json={"pagination": {"first": 20}, "filter": {}},
            cookies=cookies,
        )
        assert thread_id not in [t["id"] for t in listed.json()["data"]]
    finally:
        server.stop()


def _overlay_element(thread: dict[str, Any]) -> dict[str, Any]:
    overlays = [e for e in thread["elements"] if e["name"].endswith("-overlay.jpg")]
    assert overlays, [e["name"] for e in thread["elements"]]
    return overlays[0]
