"""Older clients, unchanged, against the real server: the requests documented by
the older PaliGemma segmentation service (GET /, POST /segment and /segment/,
its ``message`` list) and by the Sa2VA-style service (/health, /process). The
replay model (MODEL_ID=replay:<json>) answers with recorded PaliGemma text, so
the masks come from the real VAE decoder path."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import datetime

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.recorded import REPLAY_CAT, REPLAY_RECORDING
from tests.support import api_inputs as inputs

pytestmark = pytest.mark.e2e

SA2VA_PROMPT = "Analyze this image and describe what you see."  # its README's
SA2VA_ANSWER = "a grey square on a plain background"
RECORDING = {
    **REPLAY_RECORDING,
    "segment left wheel": REPLAY_CAT.replace(" cat", " left wheel"),
    f"answer en {SA2VA_PROMPT}": SA2VA_ANSWER,
}
REQUESTS_HEADERS = {"Accept": "*/*", "User-Agent": "python-requests/2.32.3"}


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=RECORDING, name="older-clients", RATE_LIMIT="100000")


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


# The older PaliGemma segmentation service ---------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"accept": "application/json"},  # case: its README's curl -H
        REQUESTS_HEADERS,  # case: its README's requests.get(url).json()
    ],
)
def test_root_welcomes_api_clients(client, headers) -> None:
    response = client.get("/", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"message": "Welcome to the PaliGemma Segmentation API!"}


def test_root_still_serves_the_chat_to_browsers(client) -> None:
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/", headers={"Accept": accept})
    assert response.status_code == 200 and "<html" in response.text.lower()


@pytest.mark.parametrize("path", ["/segment", "/segment/"])  # README, diagram
def test_segment_image_file_request_reads_message(client, path) -> None:
    # Its README: files={"image_file": (name, file, "image/jpeg")}, data={prompt}
    response = client.post(
        path,
        data={"prompt": "segment cat"},
        files={"image_file": ("bl_cat.png", inputs.jpeg((200, 120)), "image/jpeg")},
        headers=REQUESTS_HEADERS,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["image"], str) and isinstance(body["masks"], list)
    (item,) = body["message"]  # what the older client reads
    assert set(item) == {"mask", "coordinates"}
    x1, y1, x2, y2 = item["coordinates"]
    # REPLAY_CAT's box: loc 100/100/700/500 of 1024, y first, on 200x120 px
    assert [x1, y1, x2, y2] == [20, 12, 98, 82]
    mask = _png(item["mask"])
    assert mask.shape == (120, 200)  # full image size, 0/255
    ys, xs = np.nonzero(mask)
    assert ys.size > 0 and x1 <= xs.min() and xs.max() < x2
    assert item["mask"] == body["masks"][0]["mask"]  # the same mask, twice


def test_segment_url_request_is_parsed_and_refused_with_the_fix(client) -> None:
    # Its README's curl: form-urlencoded prompt + image_url. Fetching URLs is
    # off by default here (SSRF); the answer names the setting that enables it.
    response = client.post(
        "/segment",
        content=(
            "prompt=segment%20left%20wheel&image_url=https%3A%2F%2Fhuggingface.co"
            "%2Fdatasets%2Fhuggingface%2Fdocumentation-images%2Fresolve%2Fmain"
            "%2Ftransformers%2Ftasks%2Fcar.jpg"
        ),
        headers={
            "accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "url_refused" and "ALLOW_IMAGE_URL" in error["message"]


# The Sa2VA-style service ---------------------------------------------------------


def test_health_carries_the_sa2va_fields(client, server) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert re.fullmatch(r"\d+:\d{2}:\d{2}", body["uptime"])
    assert datetime.fromisoformat(body["started_at"]).tzinfo is not None
    assert body["model_path"].startswith("replay:")
    assert body["model_path"].endswith("recording.json")
    assert {"/health", "/process", "/segment"} <= set(body["endpoints"])
    assert all(isinstance(v, str) for v in body["endpoints"].values())


def test_process_payload_from_its_readme_returns_result(client) -> None:
    # Its README: plain base64 (no data URL) and a free prompt, JSON body.
    payload = {
        "base64Image": base64.b64encode(inputs.jpeg((64, 48))).decode(),
        "prompt": SA2VA_PROMPT,
    }
    response = client.post(
        "/process",
        content=json.dumps(payload),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["result"] == SA2VA_ANSWER
