"""The real server with API_KEY, image_url enabled, small limits and a low
RATE_LIMIT: 401, 403 (SSRF after DNS), 409, 413, 429. Loopback traffic only.

Host names resolve through a fake resolver in the server process
(tests/support/fake_dns): the server's own address checks run on what it
answers, so every SSRF case below reaches the check it is named after."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.recorded import API_RECORDING
from tests.support import api_inputs as inputs

pytestmark = pytest.mark.e2e

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
FAKE_DNS = {
    "metadata.test": "169.254.169.254",  # cloud metadata
    "intranet.test": "10.0.0.1",  # private network
    "rebind.test": "93.184.216.34+127.0.0.1",  # one public, one loopback
    "v6local.test": "fe80::1",  # IPv6 link-local
    "shared.test": "100.64.0.1",  # carrier-grade NAT
}
ALLOWLIST = ["localhost", "127.0.0.1", "[::1]", "169.254.169.254", "10.0.0.1"]
ALLOWLIST += [*FAKE_DNS, "gone.invalid"]
FAKE_DNS_PATH = Path(__file__).resolve().parents[1] / "support" / "fake_dns"


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(
        recording=API_RECORDING,
        name="api-secured",
        API_KEY=KEY,
        ALLOW_IMAGE_URL="true",
        # Every name here resolves to (or is) a forbidden address: the address
        # check must win over the allowlist.
        IMAGE_URL_ALLOWLIST=",".join(ALLOWLIST),
        PYTHONPATH=str(FAKE_DNS_PATH),
        FAKE_DNS=",".join(f"{name}={ip}" for name, ip in FAKE_DNS.items()),
        MODEL_ALLOWLIST="google/paligemma2-3b-mix-224",
        MAX_UPLOAD_MB="1",
        MAX_IMAGE_PIXELS="1000000",
        RATE_LIMIT="100000",
    )


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _segment(client, headers=None, prompt="caption en", **fields):
    files = {"image_file": ("a.png", inputs.png(), "image/png")}
    if "image_url" in fields:
        files = None
    return client.post(
        "/segment", data={"prompt": prompt, **fields}, files=files, headers=headers
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (None, "Authorization: Bearer"),  # case: no header
        ({"Authorization": "Bearer wrong-key"}, "not valid"),  # case: wrong key
        ({"Authorization": f"Basic {KEY}"}, "Authorization: Bearer"),  # case: scheme
        ({"Authorization": f"Bearer {KEY[:-1]}"}, "not valid"),  # case: prefix
    ],
)
def test_api_routes_need_the_key(client, headers, message) -> None:
    for response in (
        _segment(client, headers),
        client.post("/process", json={"prompt": "x"}, headers=headers),
        client.post("/v1/analyze", data={"prompt": "x"}, headers=headers),
    ):
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and message in error["message"]


def test_key_admits_and_probes_and_chat_stay_open(client) -> None:
    assert _segment(client, AUTH).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/ready").status_code == 200
    assert client.get("/").status_code == 200  # the chat UI needs no API key


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost:{port}/health", "loopback"),  # case: name -> loopback
        ("http://127.0.0.1:{port}/health", "loopback"),  # case: loopback literal
        ("http://[::1]:{port}/", "loopback"),  # case: IPv6 loopback
        ("http://169.254.169.254/latest/meta-data/", "metadata"),  # case: metadata
        ("http://10.0.0.1/", "private"),  # case: private
        (
            "http://metadata.test/latest/",
            "resolves to 169.254.169.254, a cloud metadata",
        ),  # case: name -> metadata
        (
            "http://intranet.test/a.png",
            "resolves to 10.0.0.1, a private",
        ),  # case: name -> private
        (
            "http://rebind.test/a.png",
            "resolves to 127.0.0.1, a loopback",
        ),  # case: one bad address
        (
            "http://v6local.test/a.png",
            "resolves to fe80::1, a link-local",
        ),  # case: link-local v6
        (
            "http://shared.test/a.png",
            "resolves to 100.64.0.1, not a public",
        ),  # case: shared space
        ("file:///etc/passwd", "http or https"),  # case: file scheme
        ("gopher://localhost/", "http or https"),  # case: gopher scheme
        ("http://images.example.net/a.png", "IMAGE_URL_ALLOWLIST"),  # case: host
        ("http://user:pw@localhost/", "user:password"),  # case: credentials
    ],
)
def test_image_url_refusals(client, server, url, message) -> None:
    response = _segment(client, AUTH, image_url=url.format(port=server.port))
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "url_refused" and message in error["message"]


def test_upload_over_max_upload_mb_is_413(client) -> None:
    big = inputs.png_bomb(1200, 1200)[:64] + b"\x00" * (1024 * 1024 + 200_000)
    response = client.post(
        "/segment",
        data={"prompt": "segment cat"},
        files={"image_file": ("big.png", big, "image/png")},
        headers=AUTH,
    )
    assert response.status_code == 413, response.text
    assert "MAX_UPLOAD_MB" in response.json()["error"]["message"]


def test_image_over_max_image_pixels_is_refused(client) -> None:
    response = client.post(
        "/segment",
        data={"prompt": "segment cat"},
        files={"image_file": ("wide.png", inputs.png_bomb(2000, 1000), "image/png")},
        headers=AUTH,
    )
    assert response.status_code == 415
    assert "2,000,000 pixels" in response.json()["error"]["message"]


def test_allowlisted_model_that_is_not_loaded_is_409(client) -> None:
    response = _segment(client, AUTH, model_id="google/paligemma2-3b-mix-224")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "model_not_loaded"


def test_a_name_that_does_not_resolve_is_a_fetch_error(client) -> None:
    response = _segment(client, AUTH, image_url="http://gone.invalid/a.png")
    assert response.status_code != 403, response.text  # passed the checks
    error = response.json()["error"]
    assert error["code"] == "url_fetch_failed"
    assert "Could not resolve the host 'gone.invalid'" in error["message"]


RATE_LIMIT = 5


def test_rate_limit_is_enforced_with_retry_after(app_server) -> None:
    """A server of its own: exactly RATE_LIMIT requests pass, the next is 429."""
    limited = app_server(
        recording=API_RECORDING, name="rate", API_KEY=KEY, RATE_LIMIT=str(RATE_LIMIT)
    )
    with httpx.Client(base_url=limited.url, timeout=60) as client:
        statuses = [
            client.post("/process", json={}, headers=AUTH).status_code
            for _ in range(RATE_LIMIT)
        ]
        response = client.post("/process", json={}, headers=AUTH)
        probe = client.get("/health")
    assert statuses == [400] * RATE_LIMIT  # counted, answered (bad body)
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert f"the limit is {RATE_LIMIT} per minute (RATE_LIMIT)" in error["message"]
    assert probe.status_code == 200  # probes are not limited
