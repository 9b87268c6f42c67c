"""Leftovers: SSRF through image_url, thread sharing, nested JSON, framing.

- With IMAGE_URL_ALLOWLIST=* only ports IMAGE_URL_PORTS (80, 443) may be named,
  so the API is no port scanner; after connecting, every failure is one generic
  message (no upstream status or first bytes); site-local IPv6 is refused.
- ``PUT /project/thread/share`` is refused while allow_thread_sharing is off.
- Deeply nested JSON on /process is a 400, not a 500.
- The UI is never framed by another site and never MIME-sniffed.
"""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from api.fetch import UrlPolicy, address_refusal, fetch_image_url
from core.errors import UrlFetchError, UrlRefusedError
from tests.security.conftest import assert_alive

BANNER = b"SSH-2.0-OpenSSH_9.9 internal-build-4711"


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 500 if self.path == "/banner" else 404
        self.send_response(status)
        self.send_header("Content-Length", str(len(BANNER)))
        self.end_headers()
        self.wfile.write(BANNER)

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def upstream_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def policy(ports=(80, 443)) -> UrlPolicy:
    """Any host (``*``); "public.test" stands for a public host on loopback."""
    return UrlPolicy(
        allowlist=("*",),
        max_bytes=10_000,
        timeout_s=5,
        ports=ports,
        resolve=lambda host, port: ["127.0.0.1"],
        refusal=lambda ip: None if str(ip) == "127.0.0.1" else address_refusal(ip),
    )


async def test_any_host_allowlist_refuses_other_ports(upstream_port):
    with pytest.raises(UrlRefusedError, match="IMAGE_URL_PORTS"):
        await fetch_image_url(f"http://public.test:{upstream_port}/x", policy())


@pytest.mark.parametrize("path", ["/banner", "/missing"])
async def test_upstream_failures_are_one_generic_message(upstream_port, path):
    allowed = policy(ports=(upstream_port,))  # the operator opened this port
    with pytest.raises(UrlFetchError) as caught:
        await fetch_image_url(f"http://public.test:{upstream_port}{path}", allowed)
    message = caught.value.message
    assert "SSH" not in message and "4711" not in message
    assert "500" not in message and "404" not in message
    assert "Could not fetch an image from image_url" in message


@pytest.mark.parametrize(
    "address",
    [
        "fec0::1",  # case: site-local
        "fef0::abcd",  # case: site-local, top of the range
    ],
)
def test_site_local_ipv6_is_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.fixture(scope="module")
def server(secure_server):
    return secure_server(ALLOW_IMAGE_URL="true", IMAGE_URL_ALLOWLIST="*")


@pytest.mark.e2e
def test_api_refuses_image_url_on_a_non_web_port(server):
    response = httpx.post(
        f"{server.url}/segment",
        data={"prompt": "segment cat", "image_url": "http://example.com:22/x.png"},
    )
    assert response.status_code == 403, response.text
    assert "IMAGE_URL_PORTS" in response.json()["error"]["message"]
    assert_alive(server)


@pytest.mark.e2e
def test_thread_sharing_is_refused_while_switched_off(server):
    response = httpx.put(
        f"{server.url}/project/thread/share",
        json={"threadId": "00000000-0000-4000-8000-000000000000", "isShared": True},
    )
    assert response.status_code == 403, response.text
    assert "allow_thread_sharing" in response.json()["error"]["message"]


@pytest.mark.e2e
@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_json_is_a_400(server, opener):
    body = opener * 100_000
    response = httpx.post(
        f"{server.url}/process",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "nested too deeply" in response.json()["error"]["message"]
    assert_alive(server)


@pytest.mark.e2e
@pytest.mark.parametrize("path", ["/", "/health", "/project/settings"])
def test_security_headers(server, path):
    response = httpx.get(f"{server.url}{path}")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
