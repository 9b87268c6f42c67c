"""Login pieces, settings switch, database URLs, local storage and signed links."""

from __future__ import annotations

import io
import stat
import time
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest

from chat.persist.history import make_data_layer
from chat.persist.storage import LocalStorageClient, media_headers
from core.config import Settings
from core.persist.auth import (
    PasswordChecker,
    check_hash,
    ensure_auth_secret,
    hash_password,
    parse_users,
    verify_password,
)
from core.persist.locations import async_database_url, thread_folder
from core.persist.service import Persistence, main

FAST = 100_000  # the minimum iterations: keeps these tests quick
ALICE = hash_password("s3cret", iterations=FAST, salt=b"0123456789abcdef")


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("s3cret", True),  # the right password
        ("s3cret ", False),  # trailing space
        ("S3cret", False),  # case matters
        ("", False),  # empty
    ],
)
def test_verify_password(password, expected):
    assert verify_password(password, ALICE) is expected


def test_hashes_are_salted_and_carry_their_iterations():
    first, second = hash_password("pw", iterations=FAST), hash_password("pw")
    assert first != hash_password("pw", iterations=FAST)  # fresh salt each time
    assert check_hash(first)[0] == FAST and check_hash(second)[0] == 600_000
    assert verify_password("pw", first) and verify_password("pw", second)
    assert ":" not in first.split(":", 3)[3] and "$" not in first and "," not in first


@pytest.mark.parametrize(
    ("encoded", "expectation"),
    [
        (ALICE, does_not_raise()),  # well formed
        ("hunter2", pytest.raises(ValueError, match="expected")),  # plain password
        ("md5:1:abc:def", pytest.raises(ValueError, match="pbkdf2_sha256")),  # scheme
        ("pbkdf2_sha256:ten:abc:def", pytest.raises(ValueError, match="malformed")),
        ("pbkdf2_sha256:1000:abc:" + "A" * 43, pytest.raises(ValueError, match=">=")),
        ("pbkdf2_sha256:100000:abc:AAAA", pytest.raises(ValueError, match="32-byte")),
    ],
)
def test_check_hash(encoded, expectation):
    with expectation:
        check_hash(encoded)


def test_hash_password_refuses_empty_and_weak():
    with pytest.raises(ValueError, match="empty"):
        hash_password("")
    with pytest.raises(ValueError, match="iterations"):
        hash_password("pw", iterations=1000)


@pytest.mark.parametrize(
    ("entries", "expected", "expectation"),
    [
        ((), {}, does_not_raise()),  # nobody
        ((f"alice:{ALICE}",), {"alice": ALICE}, does_not_raise()),  # one user
        ((f" bob.b@x :{ALICE} ",), {"bob.b@x": ALICE}, does_not_raise()),  # spaces
        (("alice",), None, pytest.raises(ValueError, match="name:")),  # no hash
        ((f"al ice:{ALICE}",), None, pytest.raises(ValueError, match="A-Za-z")),
        ((f"a:{ALICE}", f"a:{ALICE}"), None, pytest.raises(ValueError, match="twice")),
        (("alice:hunter2",), None, pytest.raises(ValueError, match="hash-password")),
    ],
)
def test_parse_users(entries, expected, expectation):
    with expectation:
        assert parse_users(entries) == expected


@pytest.mark.parametrize(
    ("name", "password", "expected"),
    [
        ("alice", "s3cret", True),  # right
        (" alice ", "s3cret", True),  # the login form may keep spaces
        ("alice", "wrong", False),  # wrong password
        ("mallory", "s3cret", False),  # unknown user
    ],
)
def test_password_checker(name, password, expected):
    assert PasswordChecker({"alice": ALICE}).check(name, password) is expected


def test_auth_secret_is_generated_once_and_kept(tmp_path):
    assert ensure_auth_secret(tmp_path, "given-secret") == "given-secret"
    assert not (tmp_path / "auth-secret").exists()  # a given secret is not stored
    first = ensure_auth_secret(tmp_path / "data", None)
    path = tmp_path / "data" / "auth-secret"
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_auth_secret(tmp_path / "data", None) == first  # survives restarts
    assert list(path.parent.iterdir()) == [path]  # no drafts left behind
    path.write_text("short\n")
    with pytest.raises(ValueError, match="delete the file"):
        ensure_auth_secret(tmp_path / "data", None)


@pytest.mark.parametrize(
    ("env", "enabled", "login", "expectation"),
    [
        ({}, False, False, does_not_raise()),  # default: as before, no login
        ({"AUTH_USERS": f"alice:{ALICE}"}, True, True, does_not_raise()),  # auto
        (
            {"AUTH_USERS": f"alice:{ALICE}", "PERSIST": "off"},
            False,
            True,
            does_not_raise(),
        ),  # AUTH_USERS turns login on without history
        ({"PERSIST": "on"}, None, None, pytest.raises(ValueError, match="AUTH_USERS")),
        ({"PERSIST": "maybe"}, None, None, pytest.raises(ValueError, match="PERSIST")),
        (
            {"AUTH_USERS": "alice:pw"},
            None,
            None,
            pytest.raises(ValueError, match="alice"),
        ),
        (
            {"AUTH_USERS": f"alice:{ALICE}", "DATABASE_URL": "mysql://h/db"},
            None,
            None,
            pytest.raises(ValueError, match="DATABASE_URL"),
        ),  # unsupported database
    ],
)
def test_persistence_switch(tmp_path, env, enabled, login, expectation):
    with expectation:
        settings = Settings.from_env({"DATA_DIR": str(tmp_path), **env})
        persist = Persistence.from_settings(settings)
        assert persist.enabled is enabled
        assert persist.login is login
        assert (make_data_layer(persist) is not None) is enabled
        assert (tmp_path / "auth-secret").exists() is login


@pytest.mark.parametrize(
    ("url", "expected", "expectation"),
    [
        (None, "sqlite+aiosqlite:///{data}/chat.db", does_not_raise()),  # default
        ("", "sqlite+aiosqlite:///{data}/chat.db", does_not_raise()),  # empty
        ("sqlite:////srv/h.db", "sqlite+aiosqlite:////srv/h.db", does_not_raise()),
        (
            "postgres://u:p%40ss@db:5432/chat",
            "postgresql+asyncpg://u:p%40ss@db:5432/chat",
            does_not_raise(),
        ),  # Heroku-style scheme, password kept
        (
            "postgresql+asyncpg://u@db/chat",
            "postgresql+asyncpg://u@db/chat",
            does_not_raise(),
        ),  # already async
        ("mysql://u@db/chat", None, pytest.raises(ValueError, match="postgresql")),
        ("sqlite://", None, pytest.raises(ValueError, match="file")),  # in memory
        ("not a url", None, pytest.raises(ValueError, match="parse")),
    ],
)
def test_async_database_url(tmp_path, url, expected, expectation):
    with expectation:
        got = async_database_url(url, tmp_path)
        assert got == expected.format(data=tmp_path)


@pytest.mark.parametrize(
    ("thread_id", "expectation"),
    [
        ("8c1f3c52-1a4b-4f7e-9d55-0a4b8e0e6c11", does_not_raise()),  # a UUID
        ("8C1F3C52-1A4B-4F7E-9D55-0A4B8E0E6C11", pytest.raises(ValueError)),  # upper
        ("../../etc", pytest.raises(ValueError, match="UUID")),  # traversal
        ("", pytest.raises(ValueError, match="UUID")),  # empty
    ],
)
def test_thread_folder_only_takes_uuids(tmp_path, thread_id, expectation):
    """More spellings: tests/security/test_thread_id_units.py."""
    with expectation:
        folder = thread_folder(tmp_path, thread_id)
        assert folder.parent == tmp_path and folder.name == thread_id


async def test_storage_round_trip_and_cleanup(tmp_path):
    storage = LocalStorageClient(tmp_path / "files", "k" * 40)
    stored = await storage.upload_file("user-1/el-1/cat overlay.jpg", b"jpeg", "x")
    assert stored["object_key"] == "user-1/el-1/cat overlay.jpg"
    path = storage.path_for(stored["object_key"])
    assert path.read_bytes() == b"jpeg"
    url = await storage.get_read_url(stored["object_key"])
    assert url.startswith("/persisted-files/user-1/el-1/cat%20overlay.jpg?exp=")
    expires, signature = int(url.split("exp=")[1].split("&")[0]), url.split("sig=")[1]
    assert storage.verify(stored["object_key"], expires, signature)
    assert not storage.verify("user-1/el-1/other.jpg", expires, signature)
    assert not storage.verify(stored["object_key"], expires + 1, signature)
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    assert not storage.verify(stored["object_key"], expires, flipped)
    other = LocalStorageClient(tmp_path / "files", "z" * 40)  # another secret
    assert not other.verify(stored["object_key"], expires, signature)
    key = stored["object_key"]
    assert await storage.upload_file(key, b"2", overwrite=False) == {}  # kept
    assert path.read_bytes() == b"jpeg"
    assert await storage.delete_file(stored["object_key"]) is True
    assert not path.exists() and list(storage.root.iterdir()) == []  # pruned
    assert await storage.delete_file(stored["object_key"]) is False


def test_signed_links_expire(tmp_path):
    storage = LocalStorageClient(tmp_path, "k" * 40, expiry_s=60)
    past = int(time.time()) - 1
    assert not storage.verify("a/b", past, storage.sign("a/b", past))


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "a/../../b", "a//b", "a/./b", "a\\b", "..", "a/\0"],
)
def test_storage_refuses_keys_outside_its_folder(tmp_path, key):
    with pytest.raises(ValueError, match="object key"):
        LocalStorageClient(tmp_path, "k" * 40).path_for(key)


@pytest.mark.parametrize(
    ("name", "media_type", "attachment"),
    [
        ("overlay.jpg", "image/jpeg", False),  # shown inline
        ("cat.png", "image/png", False),
        ("x.coco.json", "application/octet-stream", True),  # a download
        ("evil.html", "application/octet-stream", True),  # never rendered
        ("noext", "application/octet-stream", True),
    ],
)
def test_media_headers(name, media_type, attachment):
    got_type, headers = media_headers(Path(name))
    assert got_type == media_type
    assert ("Content-Disposition" in headers) is attachment
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_hash_password_cli(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("pa55 word long\n"))
    assert main(["hash-password", "carol"]) == 0
    entry = capsys.readouterr().out.strip()
    users = parse_users([entry])
    assert list(users) == ["carol"] and verify_password(
        "pa55 word long", users["carol"]
    )
    assert main(["hash-password", "bad name"]) == 2
    assert "A-Za-z" in capsys.readouterr().err
