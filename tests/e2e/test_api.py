"""REST API contract, response formats, bad-input suite and load, against the
real server on loopback (chainlit run chainlit_app.py, synthetic VAE).

Every check of boxes, masks, areas and formats runs on recorded PaliGemma 2
answers (the replay model: everything after ``generate`` is the production
path) and first asserts how many detections it expects. One tiny random
PaliGemma 2 server covers the transformers plumbing and the queue under load.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from collections import Counter

import httpx
import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from core.geometry import box_to_pixels
from core.tokens import parse_objects
from tests.recorded import API_RECORDING, CAPTION_EN
from tests.support import api_inputs as inputs
from tests.support.api_inputs import BAD_INPUTS, MAX_IMAGES, seg_file

pytestmark = pytest.mark.e2e

QUEUE_MAX = 4


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(
        recording=API_RECORDING,
        name="api-replay",
        RATE_LIMIT="100000",
        MAX_PROMPT_CHARS="500",
        MAX_IMAGES_PER_REQUEST=str(MAX_IMAGES),
    )


@pytest.fixture(scope="module")
def tiny(app_server):
    """The tiny random PaliGemma 2: real generate, arbitrary answers."""
    return app_server(name="api-tiny", QUEUE_MAX=str(QUEUE_MAX), RATE_LIMIT="100000")


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _image(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


def _mask(text: str) -> np.ndarray:
    return np.asarray(_image(text).convert("L")) > 0


def expected_boxes(prompt: str, size_wh: tuple[int, int]) -> list[list[int]]:
    """Boxes in original pixels of the recorded answer to ``prompt``."""
    objects = parse_objects(API_RECORDING[prompt])
    return [list(box_to_pixels(o.box, size_wh)) for o in objects]


def assert_mask_inside_box(mask: np.ndarray, box: list[int]) -> None:
    """A real, full-size mask: pixels on, and only within the object's box."""
    x1, y1, x2, y2 = box
    assert mask.any(), "empty mask"
    ys, xs = np.nonzero(mask)
    assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2


# Contract -----------------------------------------------------------------------


def test_health_reports_the_replayed_model(client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_loaded"] and body["vae_loaded"]
    assert body["model_id"].startswith("replay:") and body["dtype"] == "replay"
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
    ("text", "prompt", "labels", "masked"),
    [
        ("segment cat", "segment cat", ["cat"], True),  # case: raw segment prompt
        (
            "detect dog ; bike",
            "detect dog ; bike",
            ["dog", "bike"],
            False,
        ),  # case: raw detect prompt, two targets
        ("caption en", "caption en", [], False),  # case: text task, no objects
        ("please find the cars", "detect car", ["car"], False),  # case: plain words
    ],
)
def test_segment_contract(client, text, prompt, labels, masked) -> None:
    response = client.post(
        "/segment",
        data={"prompt": text},
        files={"image_file": ("a.jpg", inputs.jpeg((128, 96)), "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"image", "masks", "message"}  # message: older clients
    assert _image(body["image"]).size == (128, 96)  # the input, as PNG
    items = body["masks"]
    assert [item["label"] for item in items] == labels
    boxes = expected_boxes(prompt, (128, 96))
    for item, box in zip(items, boxes, strict=True):
        assert set(item) == {"mask", "coordinates", "label"}
        assert item["coordinates"] == box
        if masked:
            assert _image(item["mask"]).size == (128, 96)
            assert_mask_inside_box(_mask(item["mask"]), box)
        else:
            assert item["mask"] is None


def test_process_contract(client) -> None:
    data = base64.b64encode(inputs.png((50, 40))).decode()
    response = client.post(
        "/process",
        json={"base64Image": f"data:image/png;base64,{data}", "prompt": "segment cat"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == API_RECORDING["segment cat"]
    (cat,) = body["objects"]
    assert cat["label"] == "cat"


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
    for item, size in ((first, (70, 50)), (third, (30, 20))):
        assert item["prompt"] == "detect cat" and item["image_size_wh"] == list(size)
        assert item["raw_text"] == API_RECORDING["detect cat"]
        assert item["answer"] is None and item["truncated"] is False
        (detection,) = item["detections"]
        assert set(detection) >= {"label", "box_px", "area", "mask_rle"}
        assert detection["label"] == "cat" and detection["mask_rle"] is None
        assert [detection["box_px"]] == expected_boxes("detect cat", size)
        assert _image(item["overlay_png"]).size == size
        assert item["timings_s"]["generate"] >= 0


def test_text_answer_comes_back_without_detections(client) -> None:
    response = client.post(
        "/v1/analyze",
        data={"prompt": "caption en"},
        files={"images": ("a.png", inputs.png((40, 30)), "image/png")},
    )
    (item,) = response.json()["results"]
    assert item["answer"] == CAPTION_EN and item["detections"] == []


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
        data={"prompt": "detect cat"},
        files={"images": (name, data, "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["results"]
    assert item["image_size_wh"] == list(size_wh)
    (cat,) = item["detections"]
    assert [cat["box_px"]] == expected_boxes("detect cat", size_wh)


def test_unicode_rtl_prompt_is_cleaned_and_runs(client) -> None:
    response = client.post(
        "/v1/analyze",
        data={"prompt": "answer ar \u202e\u0645\u0627 \u0644\u0648\u0646\u202c X\x00"},
        files={"images": ("a.png", inputs.png(), "image/png")},
    )
    assert response.status_code == 200, response.text
    cleaned = "answer ar \u0645\u0627 \u0644\u0648\u0646 X"  # Arabic kept
    (item,) = response.json()["results"]
    assert item["prompt"] == cleaned and item["answer"] == API_RECORDING[cleaned]


# Formats and many images ----------------------------------------------------------

# Large enough that the synthetic VAE's masks cover pixels at every box size.
FORMAT_FILES = [
    ("images", ("a.png", inputs.png((160, 120)), "image/png")),
    ("images", ("fake.png", b"hello, not an image", "image/png")),
    ("images", ("b.jpg", inputs.jpeg((120, 90)), "image/jpeg")),
]
GOOD_SIZES = {"a.png": (160, 120), "b.jpg": (120, 90)}
SEGMENTED = ["cat", "dog"]  # the recorded answer to "segment cat ; dog"


def _check_failures(failures: list[dict]) -> None:
    (failure,) = failures
    assert failure["index"] == 1 and failure["filename"] == "fake.png"
    assert failure["error"]["code"] == "bad_image"


def _check_coco(data: bytes, tmp_path) -> dict:
    """Loads ``data`` with pycocotools: both images, two masked objects each."""
    path = tmp_path / "annotations.coco.json"
    path.write_bytes(data)
    coco = COCO(str(path))
    images = coco.loadImgs(coco.getImgIds())
    assert {i["file_name"]: (i["width"], i["height"]) for i in images} == GOOD_SIZES
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    for image in images:
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
        assert [names[a["category_id"]] for a in annotations] == SEGMENTED
        size = (image["width"], image["height"])
        boxes = expected_boxes("segment cat ; dog", size)
        for annotation, box in zip(annotations, boxes, strict=True):
            mask = coco.annToMask(annotation)
            assert mask.shape == (image["height"], image["width"])
            assert int(mask.sum()) == annotation["area"]
            assert_mask_inside_box(mask.astype(bool), box)
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
        for result in (results[0], results[2]):
            assert [d["label"] for d in result["detections"]] == SEGMENTED
            assert all(d["area"] > 0 for d in result["detections"])
        return
    if fmt == "coco":
        _check_failures(_check_coco(response.content, tmp_path)["errors"])
        return
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        members = {name: archive.read(name) for name in archive.namelist()}
    _check_failures(json.loads(members.pop("errors.json")))
    classes = members.pop("classes.txt").decode().splitlines()
    assert classes == SEGMENTED
    for stem in ("a", "b"):
        lines = members.pop(f"labels/{stem}.txt").decode().splitlines()
        class_ids = [line.split()[0] for line in lines]  # a line per polygon
        assert sorted(set(class_ids)) == ["0", "1"]  # cat's polygons, dog's
        assert class_ids == sorted(class_ids)  # in object order
        for line in lines:
            coords = [float(v) for v in line.split()[1:]]
            assert len(coords) >= 6 and len(coords) % 2 == 0
            assert all(0 <= v <= 1 for v in coords)  # normalised polygon
    if fmt == "yolo":
        assert members == {}  # nothing else: labels, classes, errors
        return
    _check_coco(members.pop("annotations.coco.json"), tmp_path)
    for stem, name in (("a", "a.png"), ("b", "b.jpg")):
        overlay = Image.open(io.BytesIO(members.pop(f"{stem}/overlay.png")))
        assert overlay.size == GOOD_SIZES[name]
    expected = {
        f"{s}/{i:02d}_{label}.png"
        for s in "ab"
        for i, label in ((1, "cat"), (2, "dog"))
    }
    assert set(members) == expected  # what is left: one PNG per mask
    for name, data in members.items():
        size = GOOD_SIZES["a.png" if name.startswith("a/") else "b.jpg"]
        mask = Image.open(io.BytesIO(data))
        assert mask.size == size and np.asarray(mask).any()


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
    ("path", "request_kwargs", "status", "code", "phrase"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(
    client, path, request_kwargs, status, code, phrase
) -> None:
    kwargs = request_kwargs() if callable(request_kwargs) else request_kwargs
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert phrase in error["message"]
    assert len(error["message"]) < 600 and "Traceback" not in error["message"]
    assert client.get("/health").status_code == 200


def test_bomb_message_names_the_pixel_count(client) -> None:
    response = client.post("/segment", **seg_file(inputs.png_bomb()))
    assert "100,000,000 pixels" in response.json()["error"]["message"]


# Load ---------------------------------------------------------------------------

MAX_ATTEMPTS = 240  # retries of at most 1 s: slow, shared CI machines


def test_tiny_model_runs_the_real_generate_path(tiny) -> None:
    """The transformers plumbing: local fp32 engine, a real (random) answer
    parsed and answered in the API's shape."""
    health = httpx.get(f"{tiny.url}/health", timeout=30).json()
    assert health["backend"] == "local" and health["device"] == "cpu"
    assert health["dtype"] == "float32"
    assert health["model_id"].startswith("tiny-paligemma2")  # its name, no path
    response = httpx.post(
        f"{tiny.url}/v1/analyze",
        data={"prompt": "segment cat", "max_new_tokens": "24"},
        files={"images": ("a.png", inputs.png((70, 50)), "image/png")},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["results"]
    assert item["prompt"] == "segment cat" and item["image_size_wh"] == [70, 50]
    assert isinstance(item["raw_text"], str) and item["timings_s"]["generate"] > 0
    assert len(parse_objects(item["raw_text"])) == len(item["detections"])


async def test_fifty_concurrent_requests_get_an_answer_or_busy(tiny, record_property):
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

    async with httpx.AsyncClient(base_url=tiny.url, timeout=120, limits=limits) as http:
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
    assert tiny.process.poll() is None
