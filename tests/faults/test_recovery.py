"""What a crash can leave in a thread folder, and how a resume reads it
(core.persist.recovery through Persistence.load_state; no server)."""

from __future__ import annotations

import hashlib
import io
import re
import uuid

import pytest
from PIL import Image

from chat.photos import PhotoStore
from chat.session import restore_notice
from core.config import Settings
from core.conversation import Conversation
from core.persist.auth import hash_password
from core.persist.recovery import write_durably
from core.persist.service import ChatState, Persistence

OPTIONS = {"opacity": 0.5}


def jpeg(size=(80, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def persist(tmp_path) -> Persistence:
    users = f"alice:{hash_password('pw', iterations=100_000)}"
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "AUTH_USERS": users})
    return Persistence.from_settings(settings)


@pytest.fixture
def thread(persist):
    """(thread id, its folder) with one saved photo, 001, and no turns."""
    thread_id = str(uuid.uuid4())
    folder = persist.thread_folder(thread_id)
    folder.mkdir(parents=True)
    (folder / "001.orig").write_bytes(jpeg())
    chat = Conversation()
    chat.add_image("cat.jpg", str(folder / "001.jpg"), (80, 60))
    persist.save_state(thread_id, ChatState(chat, OPTIONS))
    return thread_id, folder


def test_a_photo_accepted_before_its_copies_were_written_is_kept(persist, thread):
    thread_id, folder = thread  # only 001.orig: killed before the copies
    state = persist.load_state(thread_id, OPTIONS)
    assert state.problems == ()
    (record,) = state.conversation.images
    photo = PhotoStore().get(record.path, record.size_wh)  # remade from .orig
    assert photo.original_wh == (80, 60)
    assert (folder / "001.jpg").is_file() and (folder / "001.model.jpg").is_file()


def test_an_original_the_state_missed_is_restored_with_its_upload_name(persist, thread):
    thread_id, folder = thread
    data = jpeg((120, 90))
    (folder / "002.orig").write_bytes(data)  # killed before the save
    names = {hashlib.sha256(data).hexdigest(): "car.jpg"}
    state = persist.load_state(thread_id, OPTIONS, lambda: names)
    assert state.problems == ()
    added = state.conversation.images[-1]
    assert (added.name, added.size_wh) == ("car.jpg", (120, 90))
    assert state.conversation.active_image == added


def test_an_original_cut_short_is_named_as_lost_once(persist, thread):
    thread_id, folder = thread
    data = jpeg()[:200]  # the crash cut the write short
    (folder / "002.orig").write_bytes(data)
    names = {hashlib.sha256(data).hexdigest(): "[x](https://evil.example) *car*.jpg"}
    state = persist.load_state(thread_id, OPTIONS, lambda: names)
    (problem,) = state.problems
    assert re.fullmatch(
        r"the photo \[x\]\(https://evil.example\) \*car\*.jpg from "
        r"\d\d:\d\d UTC was lost; send it again",
        problem,
    ), problem
    notice = restore_notice(state.problems)
    assert "](https" not in notice and "\\*car\\*" in notice  # escaped
    assert [r.name for r in state.conversation.images] == ["cat.jpg"]
    again = persist.load_state(thread_id, OPTIONS, lambda: names)
    assert again.problems == ()  # set aside as 002.lost, not named again
    assert (folder / "002.lost").is_file()


def test_no_state_file_but_a_photo_on_disk(persist):
    thread_id = str(uuid.uuid4())
    folder = persist.thread_folder(thread_id)
    folder.mkdir(parents=True)
    (folder / "001.orig").write_bytes(jpeg())  # killed in the first answer
    state = persist.load_state(thread_id, OPTIONS)
    assert [r.name for r in state.conversation.images] == ["photo 1"]


def test_state_writes_are_whole_and_leave_no_drafts(tmp_path):
    target = tmp_path / "state.json"
    for n in range(20):
        write_durably(target, f'{{"n": {n}}}')
    assert target.read_text() == '{"n": 19}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
