"""``tiles`` over the real API on recorded answers: more looks, merged results."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.recorded import REPLAY_RECORDING

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="tiles-api")


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), "orange").save(buffer, format="JPEG")
    return buffer.getvalue()


def _analyze(server, tiles: str | None) -> httpx.Response:
    data = {"prompt": "detect cat"}
    if tiles is not None:
        data["tiles"] = tiles
    files = {"images": ("big.jpg", _photo(), "image/jpeg")}
    return httpx.post(f"{server.url}/v1/analyze", data=data, files=files, timeout=120)


def test_tiles_run_more_looks_and_keep_boxes_on_the_photo(server) -> None:
    plain = _analyze(server, None).json()["results"][0]
    tiled = _analyze(server, "2x2").json()["results"][0]
    assert "tiles" not in plain["timings_s"]
    assert tiled["timings_s"]["tiles"] == 4
    # the recording answers one cat per look, at the same place in each look
    assert len(plain["detections"]) == 1
    assert 1 < len(tiled["detections"]) <= 5
    for detection in tiled["detections"]:
        x1, y1, x2, y2 = detection["box_px"]
        assert 0 <= x1 < x2 <= 1600 and 0 <= y1 < y2 <= 1200
        assert detection["label"] == "cat"
    # the whole-photo cat is merged with the same cat seen by the first tile
    px1, py1, px2, py2 = plain["detections"][0]["box_px"]
    assert any(
        x1 <= px1 and y1 <= py1 and px2 <= x2 and py2 <= y2
        for x1, y1, x2, y2 in (d["box_px"] for d in tiled["detections"])
    )


@pytest.mark.parametrize("tiles", ["9x9", "many"])
def test_a_bad_tiles_value_is_a_clear_400(server, tiles) -> None:
    response = _analyze(server, tiles)
    assert response.status_code == 400
    assert "tiles must be" in response.json()["error"]["message"]
