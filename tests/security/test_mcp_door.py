"""Attacks on the MCP door (/mcp, streamable HTTP) on the real server, made
with the ``mcp`` package's own client: no API key, image URLs to private
addresses (SSRF), local file paths (only the local stdio transport may read
them), and the rate limit it shares with the REST API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tests.support import api_inputs as inputs
from tests.support.mcp_client import b64, error_text, http_call, http_tools

pytestmark = pytest.mark.e2e

KEY = "mcp-attack-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "attacker", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server(
        API_KEY=KEY,
        ALLOW_IMAGE_URL="true",
        # Named outright, so only the address check stands in the way.
        IMAGE_URL_ALLOWLIST="127.0.0.1,localhost,10.0.0.1,169.254.169.254",
        RATE_LIMIT="100000",
    )


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """An image server on loopback that records every request it gets."""
    hits: list[str] = []
    body = inputs.png((32, 32))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/cat.png", hits
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # case: no Authorization
        {"Authorization": "Bearer wrong-key"},  # case: a wrong key
        {"Authorization": f"Basic {KEY}"},  # case: the key, not as Bearer
    ],
)
def test_no_valid_api_key_is_401_before_any_mcp_work(server, headers) -> None:
    response = httpx.post(
        f"{server.url}/mcp",
        json=INITIALIZE,
        headers={**MCP_HEADERS, **headers},
        timeout=10,
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


def test_the_official_client_without_the_key_gets_no_tools(server) -> None:
    with pytest.raises(BaseException) as caught:
        http_tools(server.url)
    assert "401" in repr(caught.value) or "Unauthorized" in repr(caught.value)
    assert {t.name for t in http_tools(server.url, AUTH)} >= {"detect", "segment"}


def test_urls_to_private_addresses_are_refused_unfetched(server, canary) -> None:
    url, hits = canary
    for image, reason in [
        (url, "loopback"),  # case: the server's own loopback
        ("http://localhost:9/x.png", "loopback"),  # case: a name for loopback
        ("http://10.0.0.1/x.png", "private"),  # case: the private network
        ("http://169.254.169.254/latest/meta-data/", "metadata"),  # case: cloud
    ]:
        result = http_call(
            server.url, "segment", {"image": image, "targets": ["cat"]}, AUTH
        )
        assert reason in error_text(result), (image, result)
    assert hits == []  # nothing was ever fetched


def test_local_paths_are_not_read_over_http(server, tmp_path) -> None:
    photo = tmp_path / "private.png"
    photo.write_bytes(inputs.png((48, 32)))
    for image in (
        str(photo),  # case: a real image the server could read
        f"file://{photo}",  # case: a file URL
        "/etc/passwd",  # case: a secret, by absolute path
        "~/.ssh/id_rsa",  # case: the home folder
        "/no/such/file",  # case: the same answer whether or not it exists
        "C:\\Windows\\win.ini",  # case: a Windows path
    ):
        result = http_call(
            server.url, "segment", {"image": image, "targets": ["cat"]}, AUTH
        )
        assert "stdio" in error_text(result), (image, result)
    ok = http_call(
        server.url,
        "segment",
        {"image": b64(photo.read_bytes()), "targets": "cat"},
        AUTH,
    )
    assert not ok.isError and ok.structuredContent["image_size_wh"] == [48, 32]


def test_mcp_calls_share_the_rest_apis_rate_limit(secure_server) -> None:
    limited = secure_server(API_KEY=KEY, RATE_LIMIT="2")
    rest = httpx.post(
        f"{limited.url}/segment",
        data={"prompt": "segment cat"},
        files={"image_file": ("a.png", inputs.png(), "image/png")},
        headers=AUTH,
        timeout=30,
    )
    assert rest.status_code == 200, rest.text  # 1 of 2
    image = b64(inputs.png())
    first = http_call(limited.url, "segment", {"image": image, "targets": "cat"}, AUTH)
    assert not first.isError, first  # 2 of 2
    second = http_call(limited.url, "segment", {"image": image, "targets": "cat"}, AUTH)
    assert "RATE_LIMIT" in error_text(second) or "rate" in error_text(second).lower()
    rest = httpx.post(
        f"{limited.url}/segment",
        data={"prompt": "segment cat"},
        files={"image_file": ("a.png", inputs.png(), "image/png")},
        headers=AUTH,
        timeout=30,
    )
    assert rest.status_code == 429
