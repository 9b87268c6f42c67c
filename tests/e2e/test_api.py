"""REST API contract, response formats, bad-input suite and load, against the
real server on loopback (chainlit run chainlit_app.py, tiny PaliGemma 2,
synthetic VAE). One server for the whole module."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import zipfile
from collections import Counter

import httpx
import pytest
from PIL import Image
from pycocotools.coco import COCO

from tests.support import api_inputs as inputs
from tests.support.api_inputs import BAD_INPUTS, MAX_IMAGES, seg_file
from tests.support.chat_client import start_server

pytestmark = pytest.mark.e2e

QUEUE_MAX = 4


@pytest.fixture(scope="module")
def server(tiny_model_dir, synthetic_vae_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-server")
    env = {
        "MODEL_ID": str(tiny_model_dir),
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(tmp / "data"),
        "HF_HUB_OFFLINE": "1",
        "QUEUE_MAX": str(QUEUE_MAX),
        "RATE_LIMIT": "100000",
        "MAX_PROMPT_CHARS": "500",
        "MAX_IMAGES_PER_REQUEST": str(MAX_IMAGES),
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


def _image(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


# Contract -----------------------------------------------------------------------


def test_health_replaces_chainlits_and_reports_the_model(client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_loaded"] and body["vae_loaded"]
    assert body["device"] == "cpu" and body["dtype"] == "float32"
    # The tiny checkpoint folder, by its last part only (no local paths shown).
    assert body["model_id"].startswith("…/tiny-paligemma2")
    assert body["backend"] == "local"
    assert body["uptime_s"] > 0 and body["started_at"].endswith("+00:00")
    assert body["queue_depth"] == 0


def test_ready_is_200_once_loaded(client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200 and response.json()["status"] == "ready"


def test_chat_ui_still_served(client) -> None:
    browser_accept = "text/html,application/xhtml+xml,*/*;q=0.8"
    response = client.get("/", headers={"Accept": browser_accept})
    assert response.status_code == 200 and "<html" in response.text.lower()


@pytest.mark.parametrize(
    "prompt",
    [
        "segment cat",  # case: raw segment prompt
        "detect dog ; bike",  # case: raw detect prompt, two targets
        "caption en",  # case: text task
        "please find the cars",  # case: plain words
    ],
)
def test_segment_contract(client, prompt: str) -> None:
    response = client.post(
        "/segment",
        data={"prompt": prompt},
        files={"image_file": ("a.jpg", inputs.jpeg((96, 64)), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"image", "masks", "message"}  # message: older clients
    assert _image(body["image"]).size == (96, 64)  # the input, as PNG
    for item in body["masks"]:
        assert set(item) == {"mask", "coordinates", "label"}
        x1, y1, x2, y2 = item["coordinates"]
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64
        if item["mask"] is not None:
            assert _image(item["mask"]).size == (96, 64)


def test_process_contract(client) -> None:
    data = base64.b64encode(inputs.png((50, 40))).decode()
    response = client.post(
        "/process",
        json={"base64Image": f"data:image/png;base64,{data}", "prompt": "segment cat"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["result"], str) and isinstance(body["objects"], list)


def test_v1_analyze_contract_and_per_item_failure(client) -> None:
    response = client.post(
        "/v1/analyze",
        data={"prompt": "detect cat", "max_new_tokens": "12", "include": "overlay"},
        files=[
            ("images", ("a.png", inputs.png((70, 50)), "image/png")),
            ("images", ("fake.png", b"hello, not an image", "image/png")),
            ("images", ("b.jpg", inputs.jpeg((30, 20)), "image/jpeg")),
        ],
    )
    assert response.status_code == 200, response.text
    first, bad, third = response.json()["results"]
    assert (
        bad["error"]["code"] == "bad_image" and "plain text" in bad["error"]["message"]
    )
    for item, size in ((first, [70, 50]), (third, [30, 20])):
        assert item["prompt"] == "detect cat" and item["image_size_wh"] == size
        assert isinstance(item["raw_text"], str) and item["answer"] is None
        assert isinstance(item["truncated"], bool)
        for detection in item["detections"]:
            assert set(detection) >= {"label", "box_px", "area", "mask_rle"}
        assert _image(item["overlay_png"]).size == tuple(size)
        assert item["timings_s"]["generate"] > 0


@pytest.mark.parametrize(
    ("name", "data", "size_wh"),
    [
        ("16-bit.tif", inputs.tiff16((40, 30)), (40, 30)),  # case: 16-bit TIFF
        ("cmyk.jpg", inputs.jpeg((33, 22), mode="CMYK"), (33, 22)),  # case: CMYK
        ("anim.gif", inputs.animated_gif((32, 24)), (32, 24)),  # case: animation
        ("rgba.png", inputs.png((20, 20), mode="RGBA"), (20, 20)),  # case: alpha
    ],
)
def test_unusual_but_valid_images_are_analyzed(client, name, data, size_wh) -> None:
    response = client.post(
        "/v1/analyze",
        data={"prompt": "caption en"},
        files={"images": (name, data, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["image_size_wh"] == list(size_wh)


def test_unicode_rtl_prompt_is_cleaned_and_runs(client) -> None:
    response = client.post(
        "/v1/analyze",
        data={"prompt": "answer ar \u202e\u0645\u0627 \u0644\u0648\u0646\u202c X\x00"},
        files={"images": ("a.png", inputs.png(), "image/png")},
    )
    assert response.status_code == 200, response.text
    cleaned = "answer ar \u0645\u0627 \u0644\u0648\u0646 X"  # Arabic kept
    assert response.json()["results"][0]["prompt"] == cleaned


# Formats and many images ----------------------------------------------------------

FORMAT_FILES = [
    ("images", ("a.png", inputs.png((70, 50)), "image/png")),
    ("images", ("fake.png", b"hello, not an image", "image/png")),
    ("images", ("b.jpg", inputs.jpeg((30, 20)), "image/jpeg")),
]
GOOD_SIZES = {"a.png": (70, 50), "b.jpg": (30, 20)}


def _check_failures(failures: list[dict]) -> None:
    (failure,) = failures
    assert failure["index"] == 1 and failure["filename"] == "fake.png"
    assert failure["error"]["code"] == "bad_image"


def _check_coco(data: bytes, tmp_path) -> dict:
    """Loads ``data`` with pycocotools; checks images, ids and mask sizes."""
    path = tmp_path / "annotations.json"
    path.write_bytes(data)
    coco = COCO(str(path))
    images = coco.loadImgs(coco.getImgIds())
    assert {i["file_name"]: (i["width"], i["height"]) for i in images} == GOOD_SIZES
    category_ids = set(coco.getCatIds())
    for annotation in coco.loadAnns(coco.getAnnIds()):
        image = coco.loadImgs([annotation["image_id"]])[0]
        assert annotation["category_id"] in category_ids
        if annotation["segmentation"]:
            mask = coco.annToMask(annotation)
            assert mask.shape == (image["height"], image["width"])
    return coco.dataset


@pytest.mark.parametrize(
    ("fmt", "content_type", "download"),
    [
        ("json", "application/json", None),  # case: default JSON
        ("coco", "application/json", "paligemma.coco.json"),  # case: COCO
        ("yolo", "application/zip", "paligemma-yolo.zip"),  # case: YOLO labels
        ("zip", "application/zip", "paligemma-masks.zip"),  # case: everything
    ],
)
def test_v1_analyze_formats_report_the_broken_image(
    client, tmp_path, fmt, content_type, download
) -> None:
    response = client.post(
        "/v1/analyze",
        data={
            "prompt": "segment cat ; dog",
            "max_new_tokens": "48",
            "format": fmt,
            "include": "overlay",
        },
        files=FORMAT_FILES,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.headers["x-failed-items"] == "1"
    disposition = response.headers.get("content-disposition")
    assert disposition == (download and f'attachment; filename="{download}"')
    if fmt == "json":
        results = response.json()["results"]
        assert [r["filename"] for r in results] == ["a.png", "fake.png", "b.jpg"]
        assert results[1]["error"]["code"] == "bad_image"
        return
    if fmt == "coco":
        _check_failures(_check_coco(response.content, tmp_path)["errors"])
        return
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        members = {name: archive.read(name) for name in archive.namelist()}
    _check_failures(json.loads(members.pop("errors.json")))
    classes = members.pop("classes.txt").decode().splitlines()
    for stem in ("a", "b"):
        for line in members.pop(f"labels/{stem}.txt").decode().splitlines():
            class_id, *coords = line.split()
            assert 0 <= int(class_id) < len(classes) and len(coords) >= 6
    if fmt == "yolo":
        assert members == {}  # nothing else: labels, classes, errors
        return
    _check_coco(members.pop("annotations.coco.json"), tmp_path)
    for stem, name in (("a", "a.png"), ("b", "b.jpg")):
        overlay = Image.open(io.BytesIO(members.pop(f"{stem}/overlay.png")))
        assert overlay.size == GOOD_SIZES[name]
    for name, data in members.items():  # what is left: one PNG per mask
        assert re.fullmatch(r"[ab]/\d\d_[^/]+\.png", name), name
        stem = name.split("/")[0]
        size = GOOD_SIZES["a.png" if stem == "a" else "b.jpg"]
        assert Image.open(io.BytesIO(data)).size == size


@pytest.mark.parametrize(
    ("count", "status"),
    [
        (MAX_IMAGES, 200),  # case: at MAX_IMAGES_PER_REQUEST
        (MAX_IMAGES + 1, 400),  # case: one over
    ],
)
def test_max_images_per_request(client, count: int, status: int) -> None:
    png = inputs.png()
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(count)]
    response = client.post(
        "/v1/analyze",
        data={"prompt": "caption en", "max_new_tokens": "4"},
        files=files,
    )
    assert response.status_code == status, response.text
    if status == 200:
        results = response.json()["results"]
        assert [r["filename"] for r in results] == [f"{i}.png" for i in range(count)]
        assert all(r["image_size_wh"] == [64, 48] for r in results)
    else:
        message = response.json()["error"]["message"]
        assert f"at most {MAX_IMAGES} images" in message
        assert "MAX_IMAGES_PER_REQUEST" in message


# Bad inputs: every case is a 4xx JSON error and the server stays up -------------


@pytest.mark.parametrize(
    ("path", "request_kwargs", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(
    client, path, request_kwargs, status, code
) -> None:
    kwargs = request_kwargs() if callable(request_kwargs) else request_kwargs
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert 10 < len(error["message"]) < 600 and "Traceback" not in error["message"]
    assert client.get("/health").status_code == 200


def test_bad_input_suite_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 40


def test_bomb_message_names_the_pixel_count(client) -> None:
    response = client.post("/segment", **seg_file(inputs.png_bomb()))
    assert "100,000,000 pixels" in response.json()["error"]["message"]


# Load ---------------------------------------------------------------------------

MAX_ATTEMPTS = 60


async def test_fifty_concurrent_requests_get_an_answer_or_busy(server, record_property):
    """50 at once from one client through a queue of QUEUE_MAX: 200, or 429
    (past QUEUE_PER_CLIENT) / 503 with Retry-After, none lost.

    Then each request is retried in a bounded loop, waiting Retry-After
    (capped at 1 s): every one of the 50 ends with its answer.
    """
    files = {"image_file": ("a.png", inputs.png((32, 32)), "image/png")}
    limits = httpx.Limits(max_connections=50)
    first: list[httpx.Response] = []

    async def one(http: httpx.AsyncClient) -> tuple[httpx.Response, int]:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            response = await http.post(
                "/segment", data={"prompt": "caption en"}, files=files
            )
            if attempt == 1:
                first.append(response)
            if response.status_code not in (429, 503):
                return response, attempt
            assert response.json()["error"]["code"] in ("busy", "queue_full")
            await asyncio.sleep(min(1.0, int(response.headers["Retry-After"])))
        return response, MAX_ATTEMPTS

    async with httpx.AsyncClient(
        base_url=server.url, timeout=120, limits=limits
    ) as http:
        finals = await asyncio.gather(*(one(http) for _ in range(50)))
        health = await http.get("/health")
    first_counts = Counter(r.status_code for r in first)
    final_counts = Counter(r.status_code for r, _ in finals)
    attempts = [n for _, n in finals]
    summary = {
        "first_round": dict(first_counts),
        "after_retries": dict(final_counts),
        "max_attempts": max(attempts),
    }
    record_property("load", summary)
    print(f"\nload: 50 concurrent /segment, QUEUE_MAX={QUEUE_MAX}: {summary}")
    assert sum(first_counts.values()) == 50
    assert set(first_counts) <= {200, 429, 503}
    assert first_counts[200] >= 1 and first_counts[429] >= 1  # the bound was hit
    for response in first:
        if response.status_code != 200:
            assert int(response.headers["Retry-After"]) >= 1
    assert final_counts == Counter({200: 50})  # none lost
    assert all("masks" in r.json() for r, _ in finals)
    assert health.status_code == 200 and health.json()["queue_depth"] == 0
    assert server.process.poll() is None
