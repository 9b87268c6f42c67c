"""Attack: ``tiles=auto`` ran a 4x4 grid (17 model runs) for the price of one.

An explicit ``tiles=4x4`` was refused under RATE_LIMIT=3, but ``auto`` on a
5400x5400 photo was counted once and then ran the whole photo plus 16 tiles.
Now ``auto`` is resolved to its grid once the image is decoded and charged
like that grid (N*M tiles plus the whole photo) before any of it runs, on
every door that takes ``tiles``. Over the real server (replay model); each
test is its own client address (X-Forwarded-For, trusted from 127.0.0.1:
FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.security.auth_helpers import replay_server

pytestmark = pytest.mark.e2e

LIMIT = 3


@pytest.fixture(scope="module")
def server(synthetic_vae_path, tmp_path_factory):
    with replay_server(
        tmp_path_factory,
        synthetic_vae_path,
        "tile-charges",
        RATE_LIMIT=str(LIMIT),
        FORWARDED_ALLOW_IPS="127.0.0.1",
    ) as process:
        yield process


def jpeg(size_wh: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size_wh, "orange").save(buffer, format="JPEG")
    return buffer.getvalue()


def post(server, door: str, photo: bytes, address: str, tiles: str = "auto"):
    field = "images" if door == "/v1/analyze" else "image_file"
    return httpx.post(
        f"{server.url}{door}",
        data={"prompt": "detect cat", "tiles": tiles},
        files={field: ("big.jpg", photo, "image/jpeg")},
        headers={"X-Forwarded-For": address},
        timeout=120,
    )


def message(response: httpx.Response) -> str:
    return response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("door", "address"),
    [
        ("/v1/analyze", "192.0.2.41"),  # case: the v1 API
        ("/segment", "192.0.2.42"),  # case: the older service's route
    ],
)
def test_auto_on_a_huge_photo_is_refused_like_its_grid(server, door, address):
    response = post(server, door, jpeg((5400, 5400)), address)  # auto: 4x4
    assert response.status_code == 429, response.text[:500]
    assert "counts 17" in message(response), message(response)  # 16 tiles + 1
    assert "fewer tiles" in message(response)
    # nothing ran, and the refused tiles counted nothing: 1 of 3 spent (admit)
    plain = post(server, door, jpeg((640, 480)), address, tiles="off")
    assert plain.status_code == 200, plain.text[:500]


def test_auto_counts_every_tile_it_runs(server):
    address = "192.0.2.43"
    response = post(server, "/v1/analyze", jpeg((2000, 1000)), address)  # 2x1
    assert response.status_code == 200, response.text[:500]
    assert response.json()["results"][0]["timings_s"]["tiles"] == 2
    # 2 tiles + the whole photo = 3 of 3: the limit is spent
    spent = post(server, "/v1/analyze", jpeg((640, 480)), address, tiles="off")
    assert spent.status_code == 429, spent.text[:500]
    assert "Too many requests" in message(spent)
