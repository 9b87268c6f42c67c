from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import UserInputError
from core.geometry import mask_to_xyxy
from core.pipeline import analyze, token_budget
from core.types import Decoding, Intent
from tests.recorded import SHOE_DETECT, WHEELS_BOXES_PX, WHEELS_SEGMENT

SEGMENT_WHEELS = Intent(
    task="segment",
    prompt="segment left wheel ; right wheel",
    targets=("left wheel", "right wheel"),
)
DETECT_SHOE = Intent(task="detect", prompt="detect shoe", targets=("shoe",))


@pytest.fixture
def car_photo() -> Image.Image:
    return Image.new("RGB", (640, 480), (90, 120, 150))


def test_segment_gives_full_size_masks_inside_original_pixel_boxes(
    fake_model, car_photo
):
    fake_model.enqueue(WHEELS_SEGMENT)
    result = analyze(car_photo, SEGMENT_WHEELS, fake_model)

    assert fake_model.calls[0]["prompt"] == "segment left wheel ; right wheel"
    assert [d.box_px for d in result.detections] == WHEELS_BOXES_PX
    assert [d.label for d in result.detections] == ["right wheel", "right wheel"]
    for detection in result.detections:
        assert detection.mask.shape == (480, 640)
        assert detection.mask.dtype == bool
        x1, y1, x2, y2 = mask_to_xyxy(detection.mask)
        bx1, by1, bx2, by2 = detection.box_px
        assert bx1 <= x1 < x2 <= bx2 and by1 <= y1 < y2 <= by2
    assert result.answer is None
    assert result.image_size_wh == (640, 480)
    assert result.raw_text == WHEELS_SEGMENT


def test_all_masks_of_a_request_are_decoded_in_one_batch(fake_model, car_photo):
    fake_model.enqueue(WHEELS_SEGMENT)
    analyze(car_photo, SEGMENT_WHEELS, fake_model)
    (batch,) = fake_model.mask_calls
    assert batch.shape == (2, 16)
    assert batch[0, :4].tolist() == [92, 4, 44, 92]


def test_segment_with_the_synthetic_vae(fake_model, car_photo, synthetic_vae_path):
    from core.mask_decoder import MaskDecoder

    fake_model.mask_decoder = MaskDecoder.from_npz(synthetic_vae_path)
    fake_model.enqueue(WHEELS_SEGMENT)
    result = analyze(car_photo, SEGMENT_WHEELS, fake_model)
    logits = fake_model.mask_decoder.decode(np.array(fake_model.mask_calls[0]))
    for detection, patch in zip(result.detections, logits, strict=True):
        x1, y1, x2, y2 = detection.box_px
        outside = detection.mask.copy()
        outside[y1:y2, x1:x2] = False
        assert not outside.any()
        # Roughly the share of positive logits in the 64x64 patch.
        share = detection.mask[y1:y2, x1:x2].mean()
        assert share == pytest.approx((patch > 0).mean(), abs=0.1)


def test_detect_returns_boxes_without_masks(fake_model):
    fake_model.enqueue(SHOE_DETECT)
    image = Image.new("RGB", (1000, 800))
    result = analyze(image, DETECT_SHOE, fake_model)
    (shoe,) = result.detections
    assert shoe.label == "shoe"
    assert shoe.mask is None
    assert shoe.box_px == (302, 40, 631, 553)
    assert fake_model.mask_calls == []


@pytest.mark.parametrize(
    ("intent", "raw", "answer"),
    [
        (Intent(task="caption", prompt="caption en"), "a red car", "a red car"),
        (Intent(task="ocr", prompt="ocr"), "STOP", "STOP"),
        (
            Intent(task="answer", prompt="answer en what is this?"),
            "a car",
            "a car",
        ),
    ],
)
def test_text_tasks_return_the_models_text(fake_model, car_photo, intent, raw, answer):
    fake_model.enqueue(raw)
    result = analyze(car_photo, intent, fake_model)
    assert result.answer == answer
    assert result.detections == ()
    assert fake_model.calls[0]["prompt"] == intent.prompt


def test_truncated_answer_is_reported(fake_model, car_photo):
    fake_model.enqueue(
        "<loc0100><loc0100><loc0200><loc0200> cat ; <loc01", truncated=True
    )
    result = analyze(
        car_photo,
        Intent(task="detect", prompt="detect cat", targets=("cat",)),
        fake_model,
    )
    assert result.truncated
    assert len(result.detections) == 1


@pytest.mark.parametrize(
    ("intent", "budget"),
    [
        (Intent(task="detect", prompt="detect a", targets=("a",)), 7 * 4 + 8),
        (Intent(task="detect", prompt="detect a ; b", targets=("a", "b")), 7 * 8 + 8),
        (Intent(task="segment", prompt="segment a", targets=("a",)), 21 * 4 + 8),
        (
            Intent(
                task="segment",
                prompt="segment " + " ; ".join("x" * 20),
                targets=("x",) * 20,
            ),
            1024,
        ),
        (Intent(task="caption", prompt="caption en"), 64),
        (Intent(task="free", prompt="is it red?"), 96),
    ],
)
def test_token_budget(intent, budget):
    assert token_budget(intent) == budget


def test_budget_overrides_and_decoding_reach_the_model(fake_model, car_photo):
    fake_model.enqueue("a").enqueue("b").enqueue("c")
    analyze(car_photo, Intent(task="caption", prompt="caption en"), fake_model)
    analyze(
        car_photo,
        Intent(task="caption", prompt="caption en"),
        fake_model,
        max_new_tokens=10,
    )
    analyze(
        car_photo,
        Intent(task="caption", prompt="caption en"),
        fake_model,
        max_new_tokens=10,
        decoding=Decoding(preset="nucleus 0.3", max_new_tokens=5),
    )
    assert [c["max_new_tokens"] for c in fake_model.calls] == [64, 10, 5]
    assert fake_model.calls[0]["do_sample"] is False
    assert fake_model.calls[2]["top_p"] == 0.3


def test_non_run_intent_does_not_call_the_model(fake_model, car_photo):
    clarify = Intent(
        task="free", prompt="", action="clarify", message="What should I find?"
    )
    with pytest.raises(UserInputError, match="What should I find"):
        analyze(car_photo, clarify, fake_model)
    assert fake_model.calls == []


def test_timings_cover_every_stage(fake_model, car_photo):
    fake_model.enqueue(WHEELS_SEGMENT)
    result = analyze(car_photo, SEGMENT_WHEELS, fake_model)
    assert set(result.timings_s) == {"generate", "parse", "decode_masks", "place"}
    assert all(v >= 0 for v in result.timings_s.values())


def test_objects_beyond_max_detections_are_dropped_before_decoding(
    fake_model, car_photo
) -> None:
    """MAX_DETECTIONS: masks are decoded for the kept objects only; the reply
    says how many more there were and which setting keeps them."""
    from core.reply import reply_markdown
    from tests.recorded import REPLAY_CAT

    intent = Intent(task="segment", prompt="segment cat", targets=("cat",))
    fake_model.enqueue(" ; ".join([REPLAY_CAT] * 5))
    result = analyze(car_photo, intent, fake_model, max_detections=3)
    assert len(result.detections) == 3
    assert result.detections_dropped == 2
    (batch,) = fake_model.mask_calls
    assert batch.shape == (3, 16)
    text = reply_markdown(result, "cats.jpg")
    assert "2 more object(s) were found but not kept" in text
    assert "MAX_DETECTIONS" in text
    with pytest.raises(ValueError, match="max_detections must be >= 1, got 0"):
        analyze(car_photo, intent, fake_model.enqueue(REPLAY_CAT), max_detections=0)
