"""Attack: a client-chosen socket sessionId used as a path (Chainlit 2.12).

Chainlit puts uploads in FILES_DIRECTORY / sessionId and rmtree's that folder on
``clear_session`` + disconnect; an absolute id or ``../`` would delete any
folder the server user can write. Every attack below must be refused, the
canary folder outside the files root must survive, the server must live.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from core.security.sessions import folder_inside, is_canonical_uuid
from tests.security.conftest import assert_alive, files_root, open_socket

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server()


def plant_canary(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    canary = folder / "precious.txt"
    canary.write_text("must survive", encoding="utf-8")
    return canary


async def connect_clear_disconnect(url: str, session_id: str) -> bool:
    """The whole attack: connect with ``session_id``, ask Chainlit to clear the
    session (rmtree of its folder on disconnect), disconnect. True if the
    server accepted the socket."""
    sio = await open_socket(url, session_id)
    if sio is None:
        return False
    await sio.emit("clear_session")
    await sio.disconnect()
    return True


def relative_id(root: Path, target: Path) -> str:
    depth = len(root.resolve().relative_to(target.resolve().parent).parts)
    return "/".join([".."] * depth + [target.name])


@pytest.mark.parametrize("kind", ["relative", "absolute"])
async def test_path_session_id_is_refused_and_deletes_nothing(server, kind):
    victim = server.log_path.parent / f"victim-{kind}"
    canary = plant_canary(victim)
    root = files_root(server)
    session_id = relative_id(root, victim) if kind == "relative" else str(victim)
    assert (root / session_id).resolve() == victim.resolve()  # the attack aims right
    accepted = await connect_clear_disconnect(server.url, session_id)
    # A second connection with the same id: Chainlit would now write there.
    upload = httpx.post(
        f"{server.url}/project/file",
        params={"session_id": session_id},
        files={"file": ("x.png", b"\x89PNG not really", "image/png")},
        timeout=10,
    )
    assert not accepted, "the socket with a path as sessionId was accepted"
    assert upload.status_code == 400, upload.text
    assert "canonical UUID" in upload.json()["error"]["message"]
    assert canary.read_text(encoding="utf-8") == "must survive"
    assert sorted(p.name for p in victim.iterdir()) == ["precious.txt"]
    assert_alive(server)


@pytest.mark.parametrize(
    "session_id",
    [
        "",  # case: empty
        "..",  # case: parent
        ".",  # case: the files root itself
        "{3f1b0a8e-1111-4222-8333-444455556666}",  # case: braces (uuid.UUID ok)
        "3F1B0A8E-1111-4222-8333-444455556666",  # case: upper case
        "3f1b0a8e111142228333444455556666",  # case: no hyphens
        "3f1b0a8e-1111-4222-8333-444455556666/../../x",  # case: uuid then climb
    ],
)
async def test_non_canonical_session_ids_are_refused(server, session_id):
    root_before = sorted(p.name for p in files_root(server).parent.iterdir())
    assert not await connect_clear_disconnect(server.url, session_id)
    assert sorted(p.name for p in files_root(server).parent.iterdir()) == root_before
    assert files_root(server).is_dir()  # "." or ".." would have removed it
    assert_alive(server)


async def test_a_canonical_uuid_session_still_connects(server):
    assert await connect_clear_disconnect(server.url, str(uuid.uuid4()))
    assert_alive(server)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (str(uuid.UUID(int=7)), True),  # case: canonical
        ("../../etc", False),  # case: traversal
        ("/data", False),  # case: absolute
        (None, False),  # case: missing
        (12, False),  # case: not a string
        ("urn:uuid:" + str(uuid.UUID(int=7)), False),  # case: urn form
    ],
)
def test_is_canonical_uuid(value, ok):
    assert is_canonical_uuid(value) is ok


def test_session_folder_must_be_a_direct_child_of_the_files_root(tmp_path):
    root = tmp_path / ".files"
    root.mkdir()
    assert folder_inside(root, "abc") == (root / "abc").resolve()
    for name in ("..", ".", "../x", str(tmp_path / "x"), "a/b"):
        with pytest.raises(ValueError, match="direct child"):
            folder_inside(root, name)


def test_chainlit_files_dir_refuses_a_path_id_before_any_create_or_remove(tmp_path):
    from chainlit.session import BaseSession

    from chat.security import guard_session_folders

    guard_session_folders()
    session = BaseSession.__new__(BaseSession)  # no socket: only the id matters
    session.id = "../../victim"
    with pytest.raises(ValueError, match="canonical UUID"):
        _ = session.files_dir
    session.id = str(uuid.UUID(int=9))
    assert session.files_dir.name == session.id
