"""The API's response shapes with recorded PaliGemma outputs (FakeModel), in
process over httpx's ASGI transport: original-pixel boxes, full-size masks,
readiness states and the bounded queue. The real server is in test_api.py."""

from __future__ import annotations

import asyncio
import base64
import io
import threading

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import Image

from api.routes import install_api
from core.config import Settings
from core.engine.base import ModelStatus
from core.engine.queue import ModelQueue
from core.export.masks import rle_to_mask
from tests.recorded import SHOE_DETECT, WHEELS_BOXES_PX, WHEELS_SEGMENT
from tests.support.fakes import FakeModel


class FakeManager:
    """FakeModel plus the ModelManager's status surface."""

    def __init__(self, model: FakeModel, state: str = "ready", error=None) -> None:
        self.model, self.state, self.error = model, state, error
        self.load_started = False

    @property
    def status(self) -> ModelStatus:
        ready = self.state == "ready"
        return ModelStatus(
            self.state, "fake/model", "cpu", "float32", ready, ready, self.error, None
        )

    def start_background_load(self) -> None:
        self.load_started = True

    def generate(self, image, prompt, **decoding):
        return self.model.generate(image, prompt, **decoding)

    def decode_masks(self, seg_indices):
        return self.model.decode_masks(seg_indices)


def _client(manager, queue=None, **settings) -> httpx.AsyncClient:
    app = FastAPI()
    install_api(
        app,
        manager=manager,
        queue=queue or ModelQueue(max_pending=4, timeout_s=30),
        settings=Settings(**{"rate_limit_per_min": 1000, **settings}),
    )
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://api.test")


def _png(size_wh=(640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size_wh, (90, 120, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _decode_png(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


async def test_segment_returns_full_size_masks_in_original_pixels() -> None:
    model = FakeModel().enqueue(WHEELS_SEGMENT)
    async with _client(FakeManager(model)) as client:
        response = await client.post(
            "/segment",
            data={"prompt": "segment wheel"},
            files={"image_file": ("car.png", _png(), "image/png")},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert model.calls[0]["prompt"] == "segment wheel"  # raw prompt unchanged
    assert _decode_png(body["image"]).shape == (480, 640, 3)
    assert [m["coordinates"] for m in body["masks"]] == [
        list(b) for b in WHEELS_BOXES_PX
    ]
    for item, (x1, y1, x2, y2) in zip(body["masks"], WHEELS_BOXES_PX, strict=True):
        assert item["label"] == "right wheel"
        mask = _decode_png(item["mask"])
        assert mask.shape == (480, 640)  # original image, not a 64x64 crop
        ys, xs = np.nonzero(mask)
        assert ys.size > 0
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2


async def test_segment_detect_prompt_returns_boxes_with_null_masks() -> None:
    model = FakeModel().enqueue(SHOE_DETECT)
    async with _client(FakeManager(model)) as client:
        response = await client.post(
            "/segment",
            data={"prompt": "detect shoe"},
            files={"image_file": ("shoe.png", _png((1024, 512)), "image/png")},
        )
    assert response.status_code == 200, response.text
    (item,) = response.json()["masks"]
    assert item["mask"] is None and item["label"] == "shoe"
    # loc/1024 * size: x of 1024 px, y of 512 px (51/1024*512 = 25.5 -> 26)
    assert item["coordinates"] == [309, 26, 646, 354]


async def test_process_accepts_a_data_url_and_returns_text_and_objects() -> None:
    model = FakeModel().enqueue(WHEELS_SEGMENT)
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    async with _client(FakeManager(model)) as client:
        response = await client.post(
            "/process", json={"base64Image": image, "prompt": "Please segment wheel"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] == WHEELS_SEGMENT
    assert [o["box_px"] for o in body["objects"]] == [list(b) for b in WHEELS_BOXES_PX]
    mask = rle_to_mask(body["objects"][0]["mask_rle"])
    assert mask.shape == (480, 640) and mask.sum() == body["objects"][0]["area"]


async def test_v1_analyze_fails_only_the_bad_item() -> None:
    model = FakeModel().enqueue(WHEELS_SEGMENT)
    async with _client(FakeManager(model)) as client:
        response = await client.post(
            "/v1/analyze",
            data={"prompt": "segment wheel", "include": "overlay,mask_png,mask_rle"},
            files=[
                ("images", ("car.png", _png(), "image/png")),
                ("images", ("notes.png", b"just text", "image/png")),
            ],
        )
    assert response.status_code == 200, response.text
    good, bad = response.json()["results"]
    assert bad["filename"] == "notes.png" and bad["error"]["code"] == "bad_image"
    assert good["prompt"] == "segment wheel" and good["truncated"] is False
    assert good["answer"] is None and good["raw_text"] == WHEELS_SEGMENT
    assert _decode_png(good["overlay_png"]).shape == (480, 640, 3)
    detection = good["detections"][1]
    assert detection["box_px"] == list(WHEELS_BOXES_PX[1])
    assert _decode_png(detection["mask_png"]).shape == (480, 640)
    assert rle_to_mask(detection["mask_rle"]).sum() == detection["area"] > 0
    assert {"generate", "decode_masks", "load_image"} <= set(good["timings_s"])


async def test_v1_analyze_passes_decoding_options_to_the_model() -> None:
    model = FakeModel().enqueue("a cow", truncated=True)
    async with _client(FakeManager(model)) as client:
        response = await client.post(
            "/v1/analyze",
            data={
                "prompt": "caption en",
                "decoding": "nucleus 0.3",
                "max_new_tokens": "9",
            },
            files={"images": ("a.png", _png(), "image/png")},
        )
    (item,) = response.json()["results"]
    assert item["answer"] == "a cow" and item["truncated"] is True
    assert model.calls[0]["max_new_tokens"] == 9 and model.calls[0]["top_p"] == 0.3


@pytest.mark.parametrize(
    ("state", "error", "status", "code"),
    [
        ("loading", None, 503, "model_loading"),  # case: still loading
        ("idle", None, 503, "model_loading"),  # case: not started
        ("failed", "HF_TOKEN missing", 503, "model_unavailable"),  # case: failed
    ],
)
async def test_ready_and_segment_while_not_ready(state, error, status, code) -> None:
    manager = FakeManager(FakeModel(), state=state, error=error)
    async with _client(manager) as client:
        ready = await client.get("/ready")
        segment = await client.post(
            "/segment",
            data={"prompt": "segment cat"},
            files={"image_file": ("a.png", _png(), "image/png")},
        )
    for response in (ready, segment):
        assert response.status_code == status
        assert response.json()["error"]["code"] == code
    if error:
        assert error in ready.json()["error"]["message"]
    else:
        assert int(segment.headers["Retry-After"]) > 0
    assert manager.load_started is (state == "idle")


async def test_full_queue_answers_503_with_retry_after() -> None:
    release, entered = threading.Event(), threading.Event()

    class SlowModel(FakeModel):
        def generate(self, image, prompt, **decoding):
            entered.set()
            release.wait(10)
            return super().generate(image, prompt, **decoding)

    model = SlowModel().enqueue("a cow").enqueue("a cow")
    queue = ModelQueue(max_pending=1, timeout_s=30)
    async with _client(FakeManager(model), queue=queue) as client:

        def post():
            return client.post(
                "/segment",
                data={"prompt": "caption en"},
                files={"image_file": ("a.png", _png((32, 32)), "image/png")},
            )

        first = asyncio.create_task(post())
        assert await asyncio.to_thread(entered.wait, 10)  # the first is running
        second = await post()
        release.set()
        assert (await first).status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "busy"
    assert int(second.headers["Retry-After"]) >= 1


async def test_one_client_over_its_queue_share_gets_429_others_still_get_in() -> None:
    release = threading.Event()
    started = threading.Event()

    class SlowModel(FakeModel):
        def generate(self, image, prompt, **decoding):
            started.set()
            release.wait(10)
            return super().generate(image, prompt, **decoding)

    model = SlowModel().enqueue("a cow").enqueue("a cow")
    queue = ModelQueue(max_pending=8, timeout_s=30, per_client=1)
    app = FastAPI()
    install_api(
        app,
        manager=FakeManager(model),
        queue=queue,
        settings=Settings(rate_limit_per_min=1000),
    )

    def client_at(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 5000))
        return httpx.AsyncClient(transport=transport, base_url="http://api.test")

    def post(client: httpx.AsyncClient):
        return client.post(
            "/segment",
            data={"prompt": "caption en"},
            files={"image_file": ("a.png", _png((32, 32)), "image/png")},
        )

    async with client_at("10.0.0.1") as greedy, client_at("10.0.0.2") as other:
        first = asyncio.create_task(post(greedy))
        await asyncio.to_thread(started.wait, 10)
        refused = await post(greedy)  # its one place is taken
        second = asyncio.create_task(post(other))  # another client: admitted
        while queue.stats()["waiting"]["api"] == 0:
            await asyncio.sleep(0.01)
        health = (await other.get("/health")).json()
        release.set()
        assert (await first).status_code == 200
        assert (await second).status_code == 200
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "queue_full"
    assert int(refused.headers["Retry-After"]) >= 1
    assert health["queue"]["waiting"] == {"chat": 0, "api": 1}
    assert health["queue"]["running"] == {"chat": 0, "api": 1}
    assert all(isinstance(call["cancel"], threading.Event) for call in model.calls)


async def test_v1_analyze_refuses_max_new_tokens_above_the_operator_limit() -> None:
    """MAX_NEW_TOKENS_LIMIT caps what a client may ask for, before any model work."""
    model = FakeModel().enqueue("a cow")
    async with _client(FakeManager(model), max_new_tokens_limit=256) as client:
        response = await client.post(
            "/v1/analyze",
            data={"prompt": "caption en", "max_new_tokens": "512"},
            files={"images": ("a.png", _png(), "image/png")},
        )
        allowed = await client.post(
            "/v1/analyze",
            data={"prompt": "caption en", "max_new_tokens": "256"},
            files={"images": ("a.png", _png(), "image/png")},
        )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "at most 256" in message and "got 512" in message
    assert "MAX_NEW_TOKENS_LIMIT" in message
    assert allowed.status_code == 200
    assert [call["max_new_tokens"] for call in model.calls] == [256]  # one call
