"""Attack: huge or endless request bodies (Chainlit reads uploads whole first).

With MAX_UPLOAD_MB=1 (and VIDEO_MAX_MB=1: chat uploads and /v1/analyze take
the larger of the two) every route, Chainlit's /project/file included, answers
413 as soon as the declared or streamed size passes the limit, without waiting
for (or keeping) the rest; and a chat message may carry at most
MAX_FILES_PER_MESSAGE files whatever the client claims.
"""

from __future__ import annotations

import io
import socket
import uuid

import httpx
import pytest
from PIL import Image

from tests.security.conftest import assert_alive, files_root
from tests.support.chat_client import ChatClient
from web.bodylimit import FORM_SLACK_BYTES, MB

pytestmark = pytest.mark.e2e

LIMIT = 1 * MB + FORM_SLACK_BYTES  # MAX_UPLOAD_MB=1 plus form slack


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server(MAX_UPLOAD_MB="1", VIDEO_MAX_MB="1", MAX_FILES_PER_MESSAGE="2")


def png(color=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, format="PNG")
    return buffer.getvalue()


def raw_exchange(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send ``head`` and ``chunks`` (never the end of the body); return what the
    server answered. A server that waits for the rest times out here."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head)
        for chunk in chunks:
            conn.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = conn.recv(65536)
            if not part:
                break
            answer += part
        return answer


def request_head(path: str, port: int, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "path",
    [
        "/project/file?session_id=" + str(uuid.UUID(int=1)),  # case: Chainlit upload
        "/v1/analyze",  # case: API
        "/auth/login",  # case: any other route
    ],
)
def test_declared_oversize_body_is_refused_before_it_is_sent(server, path):
    head = request_head(
        path,
        server.port,
        {
            "Content-Type": "multipart/form-data; boundary=x",
            "Content-Length": str(50 * MB),
        },
    )
    answer = raw_exchange(server.port, head, [b"--x\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_alive(server)


def test_streamed_oversize_body_is_cut_off_at_the_limit(server):
    """Chunked, no Content-Length: 413 once past the limit, before the end."""
    head = request_head(
        "/project/file?session_id=" + str(uuid.UUID(int=2)),
        server.port,
        {
            "Content-Type": "multipart/form-data; boundary=x",
            "Transfer-Encoding": "chunked",
        },
    )

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    part_head = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    piece = b"a" * (64 * 1024)
    count = LIMIT // len(piece) + 2  # just past the limit; the body never ends
    answer = raw_exchange(
        server.port, head, [chunk(part_head)] + [chunk(piece)] * count
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_alive(server)


async def test_oversize_chat_upload_is_refused_and_not_stored(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        big = png() + b"\0" * (2 * MB)  # a valid PNG head, 2 MB in all
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post(
                "/project/file",
                params={"session_id": client.session_id},
                files={"file": ("big.png", big, "image/png")},
            )
        assert response.status_code == 413, response.text
        assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]
        folder = files_root(server) / client.session_id
        stored = (
            [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
        )
        assert stored == []
        # A file under the limit still goes through.
        assert await client.upload("small.png", png())
    finally:
        await client.close()
    assert_alive(server)


def images_folder(server, client: ChatClient):
    """Where the chat keeps a session's photos when persistence is off."""
    return files_root(server) / client.session_id / "images"


async def test_more_files_than_allowed_in_one_message_are_refused(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        files = [(f"p{i}.png", png((i * 60, 0, 0))) for i in range(3)]
        replies = await client.send("", files)
        text = " ".join(r["output"] for r in replies)
        assert "at most 2" in text and "MAX_FILES_PER_MESSAGE" in text
        replies = await client.send("", files[:2])  # two at once are fine
        assert "Got p0.png, p1.png" in " ".join(r["output"] for r in replies)
        # each kept photo's original is written before the reply (chat.photos)
        kept = sorted(p.name for p in images_folder(server, client).glob("*.orig"))
        assert kept == ["001.orig", "002.orig"]  # none of the refused three
    finally:
        await client.close()
    assert_alive(server)
