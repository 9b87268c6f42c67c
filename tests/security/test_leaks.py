"""Leaks: credentials from BACKEND_URL and local paths in what clients see.

/health, /ready, API errors and chat messages must not show ``user:password@``
of BACKEND_URL nor the server's folders; settings keep secrets out of repr();
data files are owner-only.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from core.config import Settings
from core.security.redact import redact
from tests.security.conftest import assert_alive, files_root
from tests.support.chat_client import ChatClient

SECRET = "s3cretPassw0rd"


def folders_of(path: Path) -> list[str]:
    """Folder names of ``path`` that must not show (its last part may)."""
    return [part for part in path.parent.parts if len(part) > 4]


@pytest.mark.e2e
def test_health_and_ready_show_no_local_path(secure_server, attack_root):
    server = secure_server()
    health = httpx.get(f"{server.url}/health").json()
    ready = httpx.get(f"{server.url}/ready").json()
    for body in (health, ready):
        assert body["model_id"].endswith("recording.json")
        assert str(attack_root) not in body["model_id"]
        assert not any(part in body["model_id"] for part in folders_of(attack_root))


@pytest.mark.e2e
async def test_failed_model_error_shows_no_path(secure_server, attack_root):
    missing = attack_root / "private-folder" / "nope.json"
    server = secure_server(MODEL_ID=f"replay:{missing}", _ready="no")
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 503
    message = ready.json()["error"]["message"]
    assert "nope.json" in message  # still says which file
    assert "private-folder" not in message and str(attack_root) not in message
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.wait_for(lambda: client.assistant_messages(), timeout_s=30)
        shown = " ".join(m["output"] for m in client.assistant_messages())
        assert "nope.json" in shown
        assert "private-folder" not in shown and str(attack_root) not in shown
    finally:
        await client.close()
    assert_alive(server)


@pytest.mark.e2e
async def test_backend_url_credentials_are_not_shown(secure_server):
    url = f"http://admin:{SECRET}@127.0.0.1:9/v1"  # port 9: nothing listens
    server = secure_server(
        BACKEND="openai", BACKEND_URL=url, MODEL_ID="auto", _ready="no"
    )
    responses = [httpx.get(f"{server.url}/{path}") for path in ("health", "ready")]
    assert responses[1].status_code == 503
    client = ChatClient(server.url)
    await client.connect()
    try:
        replies = await client.send("caption this", [("a.png", _png())])
        shown = [r.text for r in responses] + [m["output"] for m in replies]
        shown += [m["output"] for m in client.assistant_messages()]
    finally:
        await client.close()
    assert "127.0.0.1:9" in " ".join(shown)  # the engine is named, its login not
    for text in shown:
        assert SECRET not in text and "admin:" not in text
    assert_alive(server)


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.e2e
async def test_data_files_are_owner_only(secure_server):
    server = secure_server()
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.send("", [("a.png", _png())])
        stored = [p for p in (files_root(server) / client.session_id).rglob("*")]
    finally:
        await client.close()
    data_dir = server.log_path.parent / "data"
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert any(p.is_file() for p in stored)
    for path in stored:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_settings_repr_hides_secrets():
    settings = Settings(
        hf_token="hf_SECRET1",
        api_key="SECRET2",
        backend="openai",
        backend_url=f"http://a:{SECRET}@h",
        backend_api_key="SECRET3",
        auth_users=("bob:pbkdf2_sha256$1$SECRET4$x",),
        database_url="postgresql://u:SECRET5@db/x",
        auth_secret="SECRET6" * 6,
    )
    shown = repr(settings)
    assert "SECRET" not in shown and SECRET not in shown
    assert "max_upload_mb=20" in shown  # the rest is still there


def test_private_data_dir_makes_new_files_owner_only(tmp_path):
    script = (
        "import sys, os, stat\n"
        "from core.security import private_data_dir\n"
        "private_data_dir(sys.argv[1])\n"
        "path = os.path.join(sys.argv[1], 'chat.db')\n"
        "open(path, 'w').close()\n"
        "print(oct(stat.S_IMODE(os.stat(path).st_mode)))\n"
    )
    folder = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.stdout.strip() == "0o600"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("engine http://u:pw1@h:8000/v1 down", "pw1", "http://***@h:8000/v1"),
        ("at http:\u2060//u:pw2@\u2060h down", "pw2", "***@"),  # escaped markdown
        ("file /home/alice/models/x.json missing", "alice", "…/x.json"),
        ("replay:/srv/app/rec.json", "/srv", "replay:…/rec.json"),
        ("~/.cache/paligemma-chat/vae-oid.npz", ".cache", "…/vae-oid.npz"),
        ("C:\\Users\\bob\\m.bin", "bob", "…/m.bin"),
        ("GET http://h/x?api_key=k9&y=1", "k9", "api_key=***&y=1"),
        ("POST /v1/analyze with images", "", "POST /v1/analyze"),
        ("see https://huggingface.co/google/x", "", "https://huggingface.co/google/x"),
    ],
)
def test_redact(text, hidden, kept):
    shown = redact(text)
    assert kept in shown
    if hidden:
        assert hidden not in shown
