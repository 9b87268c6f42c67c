"""core.service.compose with FakeModel on recorded answers: "detect
everything" (caption -> names -> one detect/segment) and a caption per
object (padded crops in one queue turn), their reply, REST body and COCO."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from api.routes import install_api
from core.config import Settings
from core.conversation import Conversation, ResultSummary
from core.engine.queue import ModelQueue
from core.export import ExportItem, to_coco
from core.intent import parse_intent
from core.reply import reply_markdown
from core.service import Picture, Services
from core.service.compose import NO_NAMES, crop_box
from tests.recorded import CAPTION_EN
from tests.test_service import ReadyModel

# Recorded-style answers on a 640x480 photo (boxes y1 x1 y2 x2 in 1/1024).
CAT_DOG = (
    "<loc0100><loc0100><loc0700><loc0500> cat ; "
    "<loc0200><loc0550><loc0900><loc0950> dog"
)
CAT_PX, DOG_PX = (62, 47, 312, 328), (344, 94, 594, 422)
SIZE = (640, 480)


def _services(model, limit: int = 1000) -> Services:
    settings = Settings(rate_limit_per_min=limit, load_on_start=False)
    return Services.build(settings, model, ModelQueue(max_pending=4, timeout_s=30))


async def _run(text: str, *answers: str, previous=None):
    model = ReadyModel(*answers)
    services = _services(model)
    job = services.prepare(parse_intent(text, previous), services.options(), "ip:1")
    result = await services.run(job, Picture(Image.new("RGB", SIZE)))
    return model, result


async def test_detect_everything_captions_then_detects_the_names() -> None:
    model, result = await _run("detect everything", CAPTION_EN, CAT_DOG)
    assert [c["prompt"] for c in model.calls] == [
        "caption en",
        "detect cat ; dog ; floor",
    ]
    assert result.intent.prompt == "detect cat ; dog ; floor"  # the turn to record
    assert (result.intent.then, result.intent.per_object) == (None, None)
    assert [(d.label, d.box_px) for d in result.detections] == [
        ("cat", CAT_PX),
        ("dog", DOG_PX),
    ]
    assert result.caption == CAPTION_EN
    reply = reply_markdown(result, "pets.png")
    assert "Caption: a cat [1] and a dog [2] on a grey floor [not found]" in reply
    assert "| cat | 62 | 47 | 312 | 328 |" in reply


async def test_segment_everything_segments_the_names() -> None:
    model, result = await _run("segment everything", "two dogs on the grass", "")
    assert [c["prompt"] for c in model.calls] == ["caption en", "segment dog ; grass"]
    assert result.intent.task == "segment" and result.detections == ()


async def test_a_caption_that_names_nothing_says_so() -> None:
    model, result = await _run("detect everything", "it is sunny")
    assert [c["prompt"] for c in model.calls] == ["caption en"]  # no detect
    assert result.answer == NO_NAMES and result.caption == "it is sunny"
    reply = reply_markdown(result, "sky.png")
    assert "Caption: it is sunny" in reply and "names nothing" in reply


async def test_a_caption_per_object_on_padded_crops() -> None:
    model, result = await _run(
        "caption each animal", CAT_DOG, "a grey cat", "a brown dog"
    )
    prompts = [c["prompt"] for c in model.calls]
    assert prompts == ["detect animal", "caption en", "caption en"]
    # cat 62,47-312,328 grown by 10 %: 25 px and 28 px each side, clipped at 0
    assert crop_box(CAT_PX, SIZE) == (37, 19, 337, 356)
    assert crop_box(DOG_PX, SIZE) == (319, 61, 619, 455)
    assert [c["image_size"] for c in model.calls[1:]] == [(300, 337), (300, 394)]
    assert result.object_captions == ("a grey cat", "a brown dog")
    table = reply_markdown(result, "pets.png")
    assert "| mask area (px) | caption |" in table
    assert "| 328 | — | a grey cat |" in table
    item = ExportItem(
        "pets.png", SIZE, result.detections, captions=result.object_captions
    )
    coco = to_coco([item])
    assert [a["attributes"] for a in coco["annotations"]] == [
        {"caption": "a grey cat"},
        {"caption": "a brown dog"},
    ]


@pytest.mark.parametrize(
    ("box_px", "size_wh", "expected"),
    [
        ((100, 100, 200, 300), (640, 480), (90, 80, 210, 320)),  # inside
        ((0, 0, 50, 50), (640, 480), (0, 0, 55, 55)),  # clipped at the top left
        ((600, 440, 640, 480), (640, 480), (596, 436, 640, 480)),  # bottom right
        ((10, 10, 10, 10), (640, 480), (10, 10, 11, 11)),  # empty: one pixel
    ],
)
def test_crop_box(box_px, size_wh, expected) -> None:
    assert crop_box(box_px, size_wh) == expected


async def test_describe_each_object_of_the_last_answer() -> None:
    previous = parse_intent("detect cat ; dog")
    model, result = await _run(
        "describe each object", CAT_DOG, "cat", "dog", previous=previous
    )
    assert [c["prompt"] for c in model.calls] == [
        "detect cat ; dog",
        "caption en",
        "caption en",
    ]
    assert result.object_captions == ("cat", "dog")


async def test_rest_detect_everything_and_captions() -> None:
    """/v1/analyze: the prompt text goes through the same parser and service."""
    model = ReadyModel(CAPTION_EN, CAT_DOG, "a grey cat", "a brown dog")
    app = FastAPI()
    install_api(app, services=_services(model))
    buffer = io.BytesIO()
    Image.new("RGB", SIZE).save(buffer, format="PNG")
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 6000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
        response = await api.post(
            "/v1/analyze",
            data={"prompt": "describe each object"},
            files={"images": ("pets.png", buffer.getvalue(), "image/png")},
        )
    assert response.status_code == 200, response.text
    body = response.json()["results"][0]
    assert body["prompt"] == "detect cat ; dog ; floor"
    assert body["caption"] == CAPTION_EN
    assert [(d["label"], d["caption"]) for d in body["detections"]] == [
        ("cat", "a grey cat"),
        ("dog", "a brown dog"),
    ]
    assert json.dumps(body)  # plain JSON


async def test_a_composed_turn_keeps_its_captions_through_save_and_replay() -> None:
    """Undo, redraws ("only 2") and "export" replay the kept turn: the
    caption and the captions per object come back with it, also after a
    restart (the saved chat state)."""
    model, result = await _run("describe each object", CAPTION_EN, CAT_DOG, "a", "b")
    chat = Conversation()
    record = chat.add_image("pets.png", "/tmp/u/1.png", SIZE)
    chat.record(record.id, result.intent, ResultSummary.from_result(result))
    saved = Conversation.from_dict(json.loads(json.dumps(chat.to_dict())))
    turn = saved.last_turn(record.id)
    again = await _services(model).replay(turn, SIZE, model)
    assert again.intent.prompt == "detect cat ; dog ; floor"
    assert (again.caption, again.object_captions) == (CAPTION_EN, ("a", "b"))
    assert [d.box_px for d in again.detections] == [CAT_PX, DOG_PX]
