"""Chat state snapshots and the history database on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest
from chainlit.context import init_http_context
from chainlit.user import User

from chat.persist.db import TABLES, AppDataLayer
from chat.persist.storage import LocalStorageClient
from core.config import Settings
from core.conversation import Conversation, ResultSummary
from core.intent.parse import parse_intent
from core.persist.auth import hash_password
from core.persist.locations import async_database_url
from core.persist.service import ChatState, Persistence

OPTIONS = {"decoding": "greedy", "max_new_tokens": 0, "opacity": 0.5}


def _chat(folder: Path) -> Conversation:
    """Two images on disk, three turns (segment, refine, detect on the 2nd)."""
    folder.mkdir(parents=True, exist_ok=True)
    chat = Conversation()
    for name in ("cat.jpg", "car.png"):
        path = folder / f"{len(chat.images) + 1:03d}.png"
        path.write_bytes(b"png")
        chat.add_image(name, str(path), (640, 480))
    first = parse_intent("segment the cat")
    chat.select("1")
    chat.record("img-1", first, ResultSummary("<loc0001> cat", ("cat",)))
    refined = parse_intent("also the dog", first)
    chat.record("img-1", refined, ResultSummary("raw", ("cat", "dog"), None, True))
    chat.record("img-2", parse_intent("detect car"), ResultSummary("car", ("car",)))
    chat.select("1")
    return chat


def test_snapshot_survives_json_and_keeps_refining(tmp_path):
    chat = _chat(tmp_path)
    again = Conversation.from_dict(json.loads(json.dumps(chat.to_dict())))
    assert again.to_dict() == chat.to_dict()
    assert again.images == chat.images and again.history == chat.history
    assert again.active_image.name == "cat.jpg"
    assert again.last_intent("img-1").prompt == "segment cat ; dog"
    assert parse_intent("now as boxes", again.last_intent("img-1")).prompt == (
        "detect cat ; dog"
    )
    assert again.add_image("new.png", "/x.png", (1, 1)).id == "img-3"  # ids go on
    assert again.undo("img-1").intent.prompt == "segment cat"


@pytest.mark.parametrize(
    ("change", "expectation"),
    [
        (lambda d: d, does_not_raise()),  # untouched
        (lambda d: d.update(version=99), pytest.raises(ValueError, match="version")),
        (lambda d: d.pop("images"), pytest.raises(ValueError, match="malformed")),
        (
            lambda d: d["turns"][0].update(image_id="img-9"),
            pytest.raises(ValueError, match="unknown images"),
        ),  # a turn on an image that is not there
        (
            lambda d: d["turns"][0]["intent"].pop("prompt"),
            pytest.raises(ValueError, match="prompt"),
        ),
    ],
)
def test_snapshot_checks(tmp_path, change, expectation):
    data = _chat(tmp_path).to_dict()
    change(data)
    with expectation:
        Conversation.from_dict(data)


def test_unknown_active_image_falls_back_to_none(tmp_path):
    data = _chat(tmp_path).to_dict()
    data["active_id"] = "img-9"
    chat = Conversation.from_dict(data)
    assert chat.active_image is None
    assert chat.to_dict()["active_id"] is None  # no dangling id saved again
    assert [r.id for r in chat.images] == ["img-1", "img-2"]


def test_drop_missing_forgets_the_image_and_its_turns(tmp_path):
    chat = _chat(tmp_path)
    Path(chat.images[0].path).unlink()
    gone = chat.drop_missing(lambda p: Path(p).is_file())
    assert [r.name for r in gone] == ["cat.jpg"]
    assert [(r.name, r.order) for r in chat.images] == [("car.png", 1)]
    assert [t.image_id for t in chat.history] == ["img-2"]


def _persistence(tmp_path: Path) -> Persistence:
    users = f"alice:{hash_password('pw', iterations=100_000)}"
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "AUTH_USERS": users})
    return Persistence.from_settings(settings)


def test_state_file_round_trip(tmp_path):
    persist = _persistence(tmp_path)
    thread_id = str(uuid.uuid4())
    chat = _chat(persist.thread_folder(thread_id))
    pending = parse_intent("segment the bike")
    path = persist.save_state(thread_id, ChatState(chat, {"opacity": 0.8}, pending))
    saved = json.loads(path.read_text())
    assert [i["path"] for i in saved["conversation"]["images"]] == [
        "001.png",
        "002.png",
    ]  # relative: the data folder may move
    state = persist.load_state(thread_id, OPTIONS)
    assert state.conversation.to_dict() == chat.to_dict()
    assert state.options == {**OPTIONS, "opacity": 0.8}
    assert state.pending == pending
    fresh = persist.load_state(str(uuid.uuid4()), OPTIONS)
    assert not fresh.conversation.has_images and fresh.options == OPTIONS


def _saved_state(tmp_path: Path) -> tuple[Persistence, str, dict]:
    """A persistence, a thread id and the JSON its state.json holds."""
    persist = _persistence(tmp_path)
    thread_id = str(uuid.uuid4())
    chat = _chat(persist.thread_folder(thread_id))
    pending = parse_intent("segment the bike")
    path = persist.save_state(thread_id, ChatState(chat, {"opacity": 0.8}, pending))
    return persist, thread_id, json.loads(path.read_text())


def _images(state: ChatState) -> list[str]:
    return [r.name for r in state.conversation.images]


BOTH = ["cat.jpg", "car.png"]


@pytest.mark.parametrize(
    ("edit", "images", "problem"),
    [
        (lambda d: {}, [], "photos and turns"),  # case: empty object
        (lambda d: {"conversation": []}, [], "photos and turns"),  # case: a list
        (lambda d: [], [], "not a JSON object"),  # case: top level a list
        (lambda d: "{not json", [], "not a JSON object"),  # case: broken JSON text
        (lambda d: {**d, "conversation": {"version": 0}}, [], "version"),  # case: old
        (
            lambda d: {**d, "conversation": {**d["conversation"], "images": 5}},
            [],
            "photos and turns",
        ),  # case: images not a list
        (
            lambda d: {**d, "conversation": {**d["conversation"], "turns": [{}]}},
            [],
            "photos and turns",
        ),  # case: a turn without fields
        (lambda d: {**d, "options": [1]}, BOTH, "settings"),  # case: options a list
        (
            lambda d: {**d, "options": {"opacity": "lots", "show_boxes": 1}},
            BOTH,
            "'opacity'",
        ),  # case: option of the wrong type
        (lambda d: {**d, "options": {"zoom": 3}}, BOTH, "'zoom'"),  # case: unknown
        (lambda d: {**d, "pending": {"task": "x"}}, BOTH, "waiting"),  # case: pending
        (lambda d: {**d, "pending": "segment"}, BOTH, "waiting"),  # case: pending str
        (
            lambda d: {**d, "pending": {"task": 1, "prompt": ["x"]}},
            BOTH,
            "waiting",
        ),  # case: pending of the wrong types
    ],
)
def test_resume_never_crashes_on_a_malformed_state_file(
    tmp_path, edit, images, problem
):
    persist, thread_id, data = _saved_state(tmp_path)
    edited = edit(data)
    target = persist.thread_folder(thread_id) / "state.json"
    target.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    state = persist.load_state(thread_id, OPTIONS)
    assert _images(state) == images
    assert any(problem in p for p in state.problems), state.problems
    assert set(state.options) == set(OPTIONS)  # every setting has a usable value
    assert all(type(state.options[k]) is type(v) for k, v in OPTIONS.items())
    # The thread stays usable: a new photo and a request on it work.
    record = state.conversation.add_image("new.png", "/x.png", (8, 8))
    state.conversation.record(
        record.id, parse_intent("detect cat"), ResultSummary("x", ("cat",))
    )
    assert state.conversation.active_image == record


def test_a_well_formed_state_file_has_no_problems(tmp_path):
    persist, thread_id, _ = _saved_state(tmp_path)
    state = persist.load_state(thread_id, OPTIONS)
    assert state.problems == () and _images(state) == BOTH
    assert state.options["opacity"] == 0.8


def test_a_gone_photo_is_named(tmp_path):
    persist, thread_id, _ = _saved_state(tmp_path)
    (persist.thread_folder(thread_id) / "001.png").unlink()
    state = persist.load_state(thread_id, OPTIONS)
    assert _images(state) == ["car.png"]
    assert state.problems == ("the photo cat.jpg is gone",)


def test_restore_notice_names_the_loss_and_escapes_markdown():
    from chat.session import restore_notice

    notice = restore_notice(["the setting '![x](http://evil/)'"])
    assert "could not be restored" in notice and "attach a photo again" in notice
    assert "![x](http" not in notice  # an edited file cannot inject an image


@pytest.fixture
async def layer(tmp_path):
    url = async_database_url(None, tmp_path)
    storage = LocalStorageClient(tmp_path / "files", "k" * 40)
    data_layer = AppDataLayer(url, storage, tmp_path / "threads")
    await data_layer.create_schema()
    init_http_context()  # Chainlit's writes look at the current session
    yield data_layer
    await data_layer.close()


async def test_schema_is_created_once_on_a_real_file(layer, tmp_path):
    await layer.create_schema()  # a second start changes nothing
    with sqlite3.connect(tmp_path / "chat.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert set(TABLES) <= names and mode == "wal"


async def test_writes_land_in_call_order_and_flush_waits(layer):
    user = await layer.create_user(User(identifier="alice"))
    thread_id, step_id = str(uuid.uuid4()), str(uuid.uuid4())
    await layer.update_thread(thread_id, name="t", user_id=user.id)
    step = {"id": step_id, "threadId": thread_id, "name": "generating"}
    step |= {"type": "llm", "streaming": False, "metadata": {}, "modes": {"a": "b"}}
    tasks = [  # fired like Chainlit does: not awaited
        asyncio.create_task(layer.update_step({**step, "output": output}))
        for output in ("", "first", "final")
    ]
    assert await layer.flush()
    assert all(task.done() for task in tasks)
    thread = await layer.get_thread(thread_id)
    assert [s["output"] for s in thread["steps"]] == ["final"]


class _Element:
    """The attributes ``create_element`` reads from a Chainlit element."""

    def __init__(self, thread_id: str, for_id: str, path: Path) -> None:
        self.id, self.thread_id, self.for_id = str(uuid.uuid4()), thread_id, for_id
        self.path, self.url, self.content = str(path), None, None
        self.name, self.mime, self.type = path.name, "image/jpeg", "image"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "threadId": self.thread_id,
            "type": self.type,
            "name": self.name,
            "display": "inline",
            "forId": self.for_id,
            "mime": self.mime,
        }


async def test_delete_thread_removes_rows_element_files_and_folder(layer, tmp_path):
    user = await layer.create_user(User(identifier="alice"))
    thread_id, step_id = str(uuid.uuid4()), str(uuid.uuid4())
    await layer.update_thread(thread_id, name="t", user_id=user.id)
    step = {"id": step_id, "threadId": thread_id, "name": "a", "type": "run"}
    await layer.create_step({**step, "streaming": False, "output": "x"})
    folder = layer.threads_root / thread_id
    folder.mkdir(parents=True)
    overlay = folder / "001-1-overlay.jpg"
    overlay.write_bytes(b"jpeg bytes")
    await layer.create_element(_Element(thread_id, step_id, overlay))
    (element,) = (await layer.get_thread(thread_id))["elements"]
    stored = layer.storage_provider.path_for(element["objectKey"])
    assert stored.read_bytes() == b"jpeg bytes"
    assert element["url"].startswith("/persisted-files/")

    await layer.delete_thread(thread_id)
    assert not folder.exists() and not stored.exists()
    assert await layer.get_thread(thread_id) is None
    with sqlite3.connect(tmp_path / "chat.db") as db:
        counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES]
    assert counts == [1, 0, 0, 0, 0]  # only the user is left


async def test_unreachable_database_fails_with_a_clear_message(tmp_path):
    storage = LocalStorageClient(tmp_path / "files", "k" * 40)
    url = "postgresql+asyncpg://app:hunter2@127.0.0.1:9/chat"  # nothing listens
    layer = AppDataLayer(url, storage, tmp_path / "threads")
    with pytest.raises(RuntimeError, match="DATABASE_URL") as caught:
        await layer.create_schema()
    assert "hunter2" not in str(caught.value) and "127.0.0.1:9" in str(caught.value)
