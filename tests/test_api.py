"""REST API contract, bad-input suite and load, against the real server on
loopback (chainlit run chainlit_app.py, tiny PaliGemma 2, synthetic VAE)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import Counter

import httpx
import pytest
from PIL import Image

from tests import api_inputs as inputs
from tests.chat_client import ServerProcess, start_server

pytestmark = pytest.mark.e2e

QUEUE_MAX = 4


def wait_ready(server: ServerProcess, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.3)
    raise RuntimeError(f"not ready in {timeout_s} s:\n{server.log()[-3000:]}")


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
    }
    process = start_server(env, tmp / "server.log")
    try:
        wait_ready(process)
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
    assert body["model_id"].endswith("tiny-paligemma20") or body["model_id"]
    assert body["uptime_s"] > 0 and body["started_at"].endswith("+00:00")
    assert body["queue_depth"] == 0


def test_ready_is_200_once_loaded(client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200 and response.json()["status"] == "ready"


def test_chat_ui_still_served(client) -> None:
    response = client.get("/")
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
    assert set(body) == {"image", "masks"}
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


# Bad inputs: every case is a 4xx JSON error and the server stays up -------------


def _seg(prompt="segment cat", **files):
    return {"data": {"prompt": prompt}, "files": files}


def _seg_file(data: bytes, name: str = "x.png", prompt: str = "segment cat"):
    return _seg(prompt, image_file=(name, data, "image/png"))


def _seg_url(url: str):
    return {"data": {"prompt": "segment cat", "image_url": url}}


def _proc(body):
    return {"json": body}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_PNG = inputs.png()
_JPEG = inputs.jpeg((200, 150))
BAD_INPUTS = [
    # (case id, path, request kwargs (a callable when costly), status, code)
    ("empty body", "/segment", {}, 415, "unsupported_media_type"),
    (
        "json to segment",
        "/segment",
        _proc({"prompt": "x"}),
        415,
        "unsupported_media_type",
    ),
    (
        "empty multipart",
        "/segment",
        {
            "content": b"--xyz--\r\n",
            "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
        },
        400,
        "bad_request",
    ),
    ("zero bytes", "/segment", _seg_file(b""), 415, "bad_image"),
    ("truncated png", "/segment", _seg_file(_PNG[: len(_PNG) // 2]), 415, "bad_image"),
    (
        "truncated jpeg",
        "/segment",
        _seg_file(_JPEG[: len(_JPEG) // 2]),
        415,
        "bad_image",
    ),
    ("png signature only", "/segment", _seg_file(_PNG[:8]), 415, "bad_image"),
    ("text named .png", "/segment", _seg_file(b"hello world\n"), 415, "bad_image"),
    ("svg", "/segment", _seg_file(inputs.SVG, "a.svg"), 415, "bad_image"),
    ("html", "/segment", _seg_file(inputs.HTML, "a.png"), 415, "bad_image"),
    ("pdf", "/segment", _seg_file(inputs.PDF, "a.pdf"), 415, "bad_image"),
    ("random binary", "/segment", _seg_file(bytes(range(256)) * 4), 415, "bad_image"),
    ("gif header only", "/segment", _seg_file(b"GIF89a\x10\x00"), 415, "bad_image"),
    (
        "tiff header only",
        "/segment",
        _seg_file(b"II*\x00\x08\x00\x00\x00"),
        415,
        "bad_image",
    ),
    ("100 MP bomb", "/segment", lambda: _seg_file(inputs.png_bomb()), 415, "bad_image"),
    (
        "huge prompt",
        "/segment",
        _seg_file(_PNG, prompt="segment " + "cat " * 500),
        400,
        "bad_request",
    ),
    (
        "control-only prompt",
        "/segment",
        _seg_file(_PNG, prompt="\x00\x01\x1b"),
        400,
        "bad_request",
    ),
    (
        "rtl-override-only prompt",
        "/segment",
        _seg_file(_PNG, prompt="\u202e\u202c\u200f"),
        400,
        "bad_request",
    ),
    ("empty prompt", "/segment", _seg_file(_PNG, prompt=""), 400, "bad_request"),
    (
        "missing prompt",
        "/segment",
        {"files": {"image_file": ("a.png", _PNG)}},
        400,
        "bad_request",
    ),
    (
        "undo is no model request",
        "/segment",
        _seg_file(_PNG, prompt="undo"),
        400,
        "bad_request",
    ),
    ("greeting", "/segment", _seg_file(_PNG, prompt="hello"), 400, "bad_request"),
    (
        "neither image field",
        "/segment",
        {"data": {"prompt": "segment cat"}},
        400,
        "bad_request",
    ),
    (
        "both image fields",
        "/segment",
        {
            "data": {"prompt": "segment cat", "image_url": "https://example.com/a.png"},
            "files": {"image_file": ("a.png", _PNG)},
        },
        400,
        "bad_request",
    ),
    (
        "image_file as text",
        "/segment",
        {"data": {"prompt": "segment cat", "image_file": "abc"}},
        400,
        "bad_request",
    ),
    (
        "prompt as file",
        "/segment",
        {"files": {"prompt": ("p.txt", b"segment cat"), "image_file": ("a.png", _PNG)}},
        400,
        "bad_request",
    ),
    (
        "two image files",
        "/segment",
        {
            "data": {"prompt": "segment cat"},
            "files": [("image_file", ("a.png", _PNG)), ("image_file", ("b.png", _PNG))],
        },
        400,
        "bad_request",
    ),
    (
        "model not allowed",
        "/segment",
        {
            **_seg_file(_PNG),
            "data": {
                "prompt": "segment cat",
                "model_id": "google/paligemma2-28b-mix-448",
            },
        },
        403,
        "model_not_allowed",
    ),
    (
        "url disabled",
        "/segment",
        _seg_url("https://example.com/cat.png"),
        403,
        "url_refused",
    ),
    (
        "url 127.0.0.1",
        "/segment",
        _seg_url("http://127.0.0.1:8010/health"),
        403,
        "url_refused",
    ),
    ("url [::1]", "/segment", _seg_url("http://[::1]/"), 403, "url_refused"),
    (
        "url metadata",
        "/segment",
        _seg_url("http://169.254.169.254/latest/meta-data/"),
        403,
        "url_refused",
    ),
    ("url file://", "/segment", _seg_url("file:///etc/passwd"), 403, "url_refused"),
    (
        "malformed multipart",
        "/segment",
        {
            "content": b"--xyz\r\nContent-Disposition: form-data; "
            b'name="prompt"\r\n\r\nseg',
            "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
        },
        400,
        "bad_request",
    ),
    (
        "process: not json",
        "/process",
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "bad_request",
    ),
    ("process: json array", "/process", _proc([1, 2]), 400, "bad_request"),
    (
        "process: missing image",
        "/process",
        _proc({"prompt": "segment cat"}),
        400,
        "bad_request",
    ),
    (
        "process: invalid base64",
        "/process",
        _proc({"prompt": "segment cat", "base64Image": "%%%not-b64%%%"}),
        400,
        "bad_request",
    ),
    (
        "process: base64 of text",
        "/process",
        _proc(
            {
                "prompt": "segment cat",
                "base64Image": "data:image/png;base64," + _b64(b"plain text"),
            }
        ),
        415,
        "bad_image",
    ),
    (
        "process: prompt not text",
        "/process",
        _proc({"prompt": 42, "base64Image": _b64(_PNG)}),
        400,
        "bad_request",
    ),
    (
        "process: missing prompt",
        "/process",
        _proc({"base64Image": _b64(_PNG)}),
        400,
        "bad_request",
    ),
    (
        "analyze: no images",
        "/v1/analyze",
        {"data": {"prompt": "segment cat"}},
        400,
        "bad_request",
    ),
    (
        "analyze: only bad images",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat"},
            "files": [("images", ("a.png", b"x")), ("images", ("b.png", inputs.SVG))],
        },
        415,
        "bad_image",
    ),
    (
        "analyze: unknown include",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "include": "polygons"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
    ),
    (
        "analyze: unknown decoding",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "decoding": "beam 99"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
    ),
    (
        "analyze: max_new_tokens text",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "max_new_tokens": "lots"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
    ),
    (
        "analyze: max_new_tokens huge",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "max_new_tokens": "99999"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
    ),
    (
        "analyze: too many images",
        "/v1/analyze",
        {
            "data": {"prompt": "caption en"},
            "files": [("images", (f"{i}.png", _PNG)) for i in range(9)],
        },
        400,
        "bad_request",
    ),
]


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
    response = client.post("/segment", **_seg_file(inputs.png_bomb()))
    assert "100,000,000 pixels" in response.json()["error"]["message"]


# Load ---------------------------------------------------------------------------

MAX_ATTEMPTS = 60


async def test_fifty_concurrent_requests_get_an_answer_or_busy(server, record_property):
    """50 at once through a queue of QUEUE_MAX: 200 or 503 + Retry-After, none lost.

    Then each client retries its 503s in a bounded loop, waiting Retry-After
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
            if response.status_code != 503:
                return response, attempt
            assert response.json()["error"]["code"] == "busy"
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
    assert sum(first_counts.values()) == 50 and set(first_counts) <= {200, 503}
    assert first_counts[200] >= 1 and first_counts[503] >= 1  # the bound was hit
    for response in first:
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) >= 1
    assert final_counts == Counter({200: 50})  # none lost
    assert all("masks" in r.json() for r, _ in finals)
    assert health.status_code == 200 and health.json()["queue_depth"] == 0
    assert server.process.poll() is None
