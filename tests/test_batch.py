"""core.batch with the FakeModel: order, per-image errors, progress, exports."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.batch import (
    INTERNAL_ERROR,
    UNREADABLE_FILE,
    BatchItem,
    batch_item_to_dict,
    batch_item_to_export_item,
    batch_to_export_items,
)
from core.errors import ModelUnavailableError, UserInputError
from core.export import masks_zip, to_coco
from core.export.masks import rle_to_mask
from core.service.many import analyze_batch, iter_batch
from core.types import Decoding, Intent
from tests.recorded import SHOE_DETECT, WHEELS_BOXES_PX, WHEELS_SEGMENT
from tests.support.fakes import FakeModel

SEGMENT_WHEELS = Intent(
    task="segment",
    prompt="segment left wheel ; right wheel",
    targets=("left wheel", "right wheel"),
)
MAX_PIXELS = 10_000_000


def png_bytes(size_wh: tuple[int, int], color=(90, 120, 150)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size_wh, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def car_png() -> bytes:
    return png_bytes((640, 480))


class FailingOnceModel(FakeModel):
    """A FakeModel whose generate raises ``error`` on call number ``fail_at``."""

    def __init__(self, error: Exception, fail_at: int) -> None:
        super().__init__()
        self.error, self.fail_at, self.seen = error, fail_at, 0

    def generate(self, image, prompt, **decoding):
        self.seen += 1
        if self.seen == self.fail_at:
            raise self.error
        return super().generate(image, prompt, **decoding)


def test_a_broken_or_missing_file_does_not_stop_the_batch(
    fake_model, car_png, tmp_path
):
    on_disk = tmp_path / "disk.png"
    on_disk.write_bytes(png_bytes((100, 50)))
    fake_model.enqueue(WHEELS_SEGMENT).enqueue(WHEELS_SEGMENT)
    sources = [
        ("first.png", car_png),
        ("broken.png", b"this is plain text, not a PNG"),
        ("missing.png", tmp_path / "does-not-exist.png"),
        ("disk.png", str(on_disk)),  # a path given as str
    ]

    items = analyze_batch(sources, SEGMENT_WHEELS, fake_model, max_pixels=MAX_PIXELS)

    assert [i.name for i in items] == [name for name, _ in sources]
    assert [i.ok for i in items] == [True, False, False, True]
    assert [i.error_code for i in items] == [None, "bad_image", UNREADABLE_FILE, None]
    assert "not an image" in items[1].error
    assert "could not be read" in items[2].error
    assert [i.size_wh for i in items] == [(640, 480), None, None, (100, 50)]
    assert [c["image_size"] for c in fake_model.calls] == [(640, 480), (100, 50)]
    assert [d.box_px for d in items[0].result.detections] == WHEELS_BOXES_PX
    assert items[1].result is None and items[2].result is None


@pytest.mark.parametrize(
    ("error", "code", "message_part"),
    [
        (ModelUnavailableError("no VAE"), "model_unavailable", "no VAE"),  # app error
        (RuntimeError("CUDA exploded"), INTERNAL_ERROR, "RuntimeError"),  # unexpected
    ],
)
def test_a_model_error_on_one_image_is_recorded_and_the_next_runs(
    car_png, error, code, message_part
):
    model = FailingOnceModel(error, fail_at=1)
    model.enqueue(SHOE_DETECT)
    sources = [("a.png", car_png), ("b.png", car_png)]

    first, second = analyze_batch(sources, "detect shoe", model, max_pixels=MAX_PIXELS)

    assert (first.ok, first.error_code, second.ok) == (False, code, True)
    assert message_part in first.error
    assert "CUDA exploded" not in first.error  # internal details stay in the log
    assert first.size_wh == (640, 480)  # loaded before the model failed
    assert [d.label for d in second.result.detections] == ["shoe"]


def test_progress_is_reported_after_every_item_including_failures(fake_model, car_png):
    fake_model.enqueue(SHOE_DETECT).enqueue(SHOE_DETECT)
    calls: list[tuple[int, int, str]] = []
    sources = [("a.png", car_png), ("bad.png", b""), ("c.png", car_png)]

    analyze_batch(
        sources,
        "detect shoe",
        fake_model,
        max_pixels=MAX_PIXELS,
        on_progress=lambda done, total, name: calls.append((done, total, name)),
    )

    assert calls == [(1, 3, "a.png"), (2, 3, "bad.png"), (3, 3, "c.png")]


def test_iter_batch_is_lazy_one_image_per_step(fake_model, car_png):
    fake_model.enqueue(SHOE_DETECT).enqueue(SHOE_DETECT)
    batch = iter_batch(
        [("a.png", car_png), ("b.png", car_png)],
        "detect shoe",
        fake_model,
        max_pixels=MAX_PIXELS,
    )
    assert fake_model.calls == []
    assert next(batch).name == "a.png"
    assert len(fake_model.calls) == 1
    assert [item.name for item in batch] == ["b.png"]


@pytest.mark.parametrize(
    "request_text",
    [
        "hello",  # no task: the chat would ask what to look for
        "undo",  # a chat action, not a model run
    ],
)
def test_a_request_that_does_not_run_the_model_fails_before_any_image(
    fake_model, car_png, request_text
):
    progress: list[tuple[int, int, str]] = []
    with pytest.raises(UserInputError):
        analyze_batch(
            [("a.png", car_png)],
            request_text,
            fake_model,
            max_pixels=MAX_PIXELS,
            on_progress=lambda *args: progress.append(args),
        )
    assert fake_model.calls == [] and progress == []


def test_every_image_gets_the_same_prompt_and_decoding(fake_model, car_png):
    fake_model.enqueue(SHOE_DETECT).enqueue(SHOE_DETECT)
    analyze_batch(
        [("a.png", car_png), ("b.png", png_bytes((30, 20)))],
        "find the shoes",
        fake_model,
        max_pixels=MAX_PIXELS,
        decoding=Decoding("nucleus 0.3", max_new_tokens=17),
    )
    assert [c["prompt"] for c in fake_model.calls] == ["detect shoe"] * 2
    assert [c["max_new_tokens"] for c in fake_model.calls] == [17, 17]
    assert all(c["do_sample"] and c["top_p"] == 0.3 for c in fake_model.calls)


@pytest.mark.parametrize(
    ("max_pixels", "max_bytes", "code"),
    [
        (640 * 480 - 1, None, "bad_image"),  # one pixel over the limit
        (MAX_PIXELS, 100, "payload_too_large"),  # the PNG is larger than 100 bytes
    ],
)
def test_image_limits_apply_per_item(fake_model, car_png, max_pixels, max_bytes, code):
    (item,) = analyze_batch(
        [("big.png", car_png)],
        "detect shoe",
        fake_model,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
    )
    assert (item.ok, item.error_code) == (False, code)
    assert fake_model.calls == []


def test_export_items_keep_only_successes_in_order(fake_model, car_png):
    fake_model.enqueue(WHEELS_SEGMENT).enqueue(SHOE_DETECT)
    items = analyze_batch(
        [("cars.png", car_png), ("broken.png", b"\x00" * 10), ("shoe.png", car_png)],
        SEGMENT_WHEELS,
        fake_model,
        max_pixels=MAX_PIXELS,
    )

    exports = batch_to_export_items(items, overlays=True, opacity=0.4)

    assert [e.file_name for e in exports] == ["cars.png", "shoe.png"]
    assert exports[0].detections == items[0].result.detections
    assert [e.size_wh for e in exports] == [(640, 480), (640, 480)]
    overlay = Image.open(io.BytesIO(exports[0].overlay_png))
    assert overlay.size == (640, 480)
    original = np.asarray(items[0].image)
    assert not np.array_equal(np.asarray(overlay.convert("RGB")), original)
    coco = to_coco(exports)
    assert [img["file_name"] for img in coco["images"]] == ["cars.png", "shoe.png"]
    assert len(coco["annotations"]) == 3  # two wheels + one shoe
    assert masks_zip(exports)[:2] == b"PK"


def test_export_without_overlays_and_without_kept_images(fake_model, car_png):
    fake_model.enqueue(SHOE_DETECT).enqueue(SHOE_DETECT)
    sources = [("a.png", car_png)]
    (kept,) = analyze_batch(sources, "detect shoe", fake_model, max_pixels=MAX_PIXELS)
    (dropped,) = analyze_batch(
        sources, "detect shoe", fake_model, max_pixels=MAX_PIXELS, keep_images=False
    )

    assert kept.image is not None and dropped.image is None
    assert batch_to_export_items([dropped], overlays=False)[0].overlay_png is None
    with pytest.raises(ValueError, match="keep_images=True"):
        batch_item_to_export_item(dropped, overlay=True)


def test_a_failed_item_cannot_be_exported():
    failed = BatchItem("x.png", None, error="bad", error_code="bad_image")
    assert batch_to_export_items([failed], overlays=True) == []
    with pytest.raises(ValueError, match=r"x\.png"):
        batch_item_to_export_item(failed)


def test_item_dicts_are_json_and_masks_round_trip(fake_model, car_png):
    fake_model.enqueue(WHEELS_SEGMENT)
    ok, bad = analyze_batch(
        [("cars.png", car_png), ("bad.png", b"")],
        SEGMENT_WHEELS,
        fake_model,
        max_pixels=MAX_PIXELS,
    )

    ok_dict = json.loads(json.dumps(batch_item_to_dict(ok)))
    bad_dict = json.loads(json.dumps(batch_item_to_dict(bad)))

    assert ok_dict["prompt"] == "segment left wheel ; right wheel"
    assert ok_dict["raw_text"] == WHEELS_SEGMENT
    assert (ok_dict["width"], ok_dict["height"], ok_dict["ok"]) == (640, 480, True)
    assert [tuple(d["box_px"]) for d in ok_dict["detections"]] == WHEELS_BOXES_PX
    detections = ok.result.detections
    for entry, detection in zip(ok_dict["detections"], detections, strict=True):
        restored = rle_to_mask(entry["mask_rle"])
        assert np.array_equal(restored, detection.mask)
        assert entry["area"] == int(detection.mask.sum()) > 0
        assert entry["label"] == "right wheel"
    assert bad_dict["ok"] is False and bad_dict["error_code"] == "bad_image"
    assert bad_dict["detections"] == [] and bad_dict["raw_text"] is None


def test_box_only_detections_have_no_mask_rle(fake_model, car_png):
    fake_model.enqueue(SHOE_DETECT)
    (item,) = analyze_batch(
        [("s.png", car_png)], "detect shoe", fake_model, max_pixels=MAX_PIXELS
    )
    (shoe,) = batch_item_to_dict(item)["detections"]
    x1, y1, x2, y2 = shoe["box_px"]
    assert shoe["mask_rle"] is None
    assert shoe["area"] == (x2 - x1) * (y2 - y1)


def test_path_sources_are_read_lazily(fake_model, tmp_path: Path):
    path = tmp_path / "late.png"
    fake_model.enqueue(SHOE_DETECT)
    batch = iter_batch(
        [("late.png", path)], "detect shoe", fake_model, max_pixels=MAX_PIXELS
    )
    path.write_bytes(png_bytes((20, 10)))  # written after the batch was set up
    (item,) = list(batch)
    assert item.ok and item.size_wh == (20, 10)
