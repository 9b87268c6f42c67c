"""core.service with FakeModel: the one budget, cost and "runs the model?"
rules, charging in prepare, per-image failures in run_many, masks placed
beside the model worker, and one rate limit shared by the chat and the API."""

from __future__ import annotations

import io
import threading
from contextlib import nullcontext as does_not_raise
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from api.routes import install_api
from chat.services import ChatServices
from chat.session import client_key
from core.config import Settings
from core.engine.base import ModelStatus
from core.engine.queue import ModelQueue
from core.errors import RateLimitedError, UserInputError
from core.intent import parse_intent
from core.pipeline import token_budget
from core.ratelimit import TOKENS_PER_HIT
from core.service import Picture, RunOptions, Services, runs_model
from core.service.many import run_many
from core.types import Decoding, Intent
from tests.recorded import SHOE_DETECT, WHEELS_SEGMENT
from tests.support.fakes import FakeModel

SEGMENT = Intent(task="segment", prompt="segment wheel", targets=("wheel",))
PHONE = (4032, 3024)  # "auto": 3x3 tiles + the whole photo = 10 looks


class ReadyModel(FakeModel):
    """FakeModel with an engine's status, recording the thread of each call."""

    def __init__(self, *outputs: str) -> None:
        super().__init__()
        for text in outputs:
            self.enqueue(text)
        self.threads: dict[str, str] = {}

    @property
    def status(self) -> ModelStatus:
        return ModelStatus(
            "ready", "fake/model", "cpu", "float32", True, True, None, None
        )

    def generate(self, image, prompt, **decoding):
        self.threads["generate"] = threading.current_thread().name
        return super().generate(image, prompt, **decoding)

    def decode_masks(self, seg_indices):
        self.threads["decode_masks"] = threading.current_thread().name
        return super().decode_masks(seg_indices)


def _services(model, **settings) -> Services:
    base = {"rate_limit_per_min": 1000, "load_on_start": False}
    return Services.build(
        Settings(**{**base, **settings}),
        model,
        ModelQueue(max_pending=4, timeout_s=30),
    )


def _png(size_wh=(640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size_wh, (90, 120, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (RunOptions(), token_budget(SEGMENT)),  # sized from the request
        (RunOptions(max_new_tokens=300), 300),  # MAX_NEW_TOKENS
        (RunOptions(Decoding(max_new_tokens=50), max_new_tokens=300), 50),  # client
    ],
)
def test_the_one_token_budget(options, expected) -> None:
    assert options.budget(SEGMENT) == expected


@pytest.mark.parametrize(
    ("options", "sizes", "images", "cost"),
    [
        (RunOptions(), (), 3, 3),  # one per image
        (RunOptions(tiles=(2, 2)), (), 1, 5),  # 4 tiles + the whole photo
        (RunOptions(tiles="auto"), (), 1, 1),  # size unknown: one look for now
        (RunOptions(tiles="auto"), (PHONE,), 1, 10),  # 3x3 + the whole photo
        (RunOptions(tiles="auto"), ((1024, 768), PHONE), 1, 11),  # 1 + 10
        (RunOptions(Decoding(max_new_tokens=TOKENS_PER_HIT + 1)), (), 2, 4),
    ],
)
def test_the_one_cost_rule_counts_tiles_and_tokens(options, sizes, images, cost):
    assert options.cost(SEGMENT, sizes, images) == cost


@pytest.mark.parametrize(
    ("text", "runs"),
    [
        ("segment the wheel", True),  # a model request
        ("caption this", True),
        ("undo", False),  # chat commands
        ("help", False),
        ("export", False),
    ],
)
def test_runs_model(text, runs) -> None:
    assert runs_model(parse_intent(text)) is runs


def test_prepare_charges_and_refuses_over_the_limit_counting_nothing() -> None:
    services = _services(ReadyModel(), rate_limit_per_min=12)
    tiled = services.options(tiles="auto")
    with pytest.raises(RateLimitedError, match="counts 20 toward"):
        services.prepare(SEGMENT, tiled, "ip:1", sizes=[PHONE, PHONE])
    job = services.prepare(SEGMENT, tiled, "ip:1", sizes=[PHONE])  # 10 of 12
    assert job.sized and job.turn == "ip:1"
    with pytest.raises(RateLimitedError, match="Try again"):
        services.prepare(SEGMENT, services.options(), "ip:1", images=3)
    services.prepare(SEGMENT, services.options(), "ip:1", images=2)  # 12 of 12


@pytest.mark.parametrize(
    ("request_text", "expectation"),
    [
        ("segment wheel", does_not_raise()),  # case: a model request
        ("undo", pytest.raises(UserInputError)),  # case: a chat command
    ],
)
def test_prepare_takes_only_model_requests(request_text, expectation) -> None:
    services = _services(ReadyModel())
    with expectation:
        services.prepare(request_text, services.options(), "ip:1")


async def test_run_many_records_a_failing_image_and_runs_the_others() -> None:
    model = ReadyModel(SHOE_DETECT, SHOE_DETECT)
    services = _services(model)
    job = services.prepare("detect shoe", services.options(), "ip:1", images=3)
    sources = [("a.png", _png()), ("broken.png", b"not an image"), ("c.png", _png())]
    items, errors = await run_many(services, job, sources)
    assert [item.ok for item in items] == [True, False, True]
    assert items[1].error_code == errors[0].code == "bad_image"
    assert [item.result.detections[0].label for item in (items[0], items[2])] == [
        "shoe",
        "shoe",
    ]
    assert len(model.calls) == 2  # the broken file never reached the model


async def test_masks_are_decoded_beside_the_model_worker() -> None:
    model = ReadyModel(WHEELS_SEGMENT)
    services = _services(model)
    job = services.prepare(SEGMENT, services.options(), "ip:1")
    result = await services.run(job, Picture(Image.new("RGB", (640, 480))))
    assert len(result.detections) == 2 and result.detections[0].has_mask
    assert model.threads["generate"].startswith("model-")  # the queue's worker
    assert not model.threads["decode_masks"].startswith("model-")


async def test_tiles_are_generated_in_the_queue_and_placed_beside_it() -> None:
    model = ReadyModel(*[WHEELS_SEGMENT] * 5)  # the whole photo + 2x2 tiles
    services = _services(model)
    job = services.prepare(SEGMENT, services.options(tiles=(2, 2)), "ip:1")
    result = await services.run(job, Picture(Image.new("RGB", (1600, 1200))))
    assert result.timings_s["tiles"] == 4 and len(model.calls) == 5
    assert model.threads["generate"].startswith("model-")
    assert not model.threads["decode_masks"].startswith("model-")


async def test_the_chat_and_the_api_share_one_rate_limit() -> None:
    """One person (one address) has RATE_LIMIT once, whatever door they use:
    the chat's work and the API's count against the same limiter."""
    services = _services(ReadyModel(), rate_limit_per_min=3)
    chat = ChatServices(service=services, persist=SimpleNamespace(enabled=False))
    app = FastAPI()
    install_api(app, services=services)
    session = SimpleNamespace(
        user=None, environ={"asgi.scope": {"client": ("10.0.0.7", 5555)}}
    )
    chat.service.admit(client_key(session), 3)  # three photos sent in the chat
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 6000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        refused = await api.get("/v1/models")
    assert refused.status_code == 429, refused.text
    assert "RATE_LIMIT" in refused.json()["error"]["message"]
    other = httpx.ASGITransport(app=app, client=("10.0.0.8", 6000))
    async with httpx.AsyncClient(transport=other, base_url="http://t") as api:
        assert (await api.get("/v1/models")).status_code == 200  # someone else
