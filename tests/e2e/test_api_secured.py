"""The real server with API_KEY, image_url enabled, small limits and a low
RATE_LIMIT: 401, 403 (SSRF after DNS), 409, 413, 429. Loopback traffic only."""

from __future__ import annotations

import httpx
import pytest

from tests.support import api_inputs as inputs
from tests.support.chat_client import start_server

pytestmark = pytest.mark.e2e

KEY = "test-key-0123456789"
RATE_LIMIT = 40
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny_model_dir, synthetic_vae_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-secured")
    env = {
        "MODEL_ID": str(tiny_model_dir),
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(tmp / "data"),
        "HF_HUB_OFFLINE": "1",
        "API_KEY": KEY,
        "ALLOW_IMAGE_URL": "true",
        # Every name here resolves to (or is) a forbidden address: the address
        # check must win over the allowlist.
        "IMAGE_URL_ALLOWLIST": "localhost,127.0.0.1,[::1],169.254.169.254,10.0.0.1",
        "MODEL_ALLOWLIST": "google/paligemma2-3b-mix-224",
        "MAX_UPLOAD_MB": "1",
        "MAX_IMAGE_PIXELS": "1000000",
        "RATE_LIMIT": str(RATE_LIMIT),
    }
    process = start_server(env, tmp / "server.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


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


def test_rate_limit_is_enforced_with_retry_after(client) -> None:
    """Runs last in this module: it spends the key's window."""
    statuses = []
    for _ in range(RATE_LIMIT + 1):
        response = client.post("/process", json={}, headers=AUTH)
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[-1] == 429 and len(statuses) <= RATE_LIMIT + 1
    assert set(statuses[:-1]) == {400}
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "rate_limited"
    assert client.get("/health").status_code == 200  # probes are not limited
