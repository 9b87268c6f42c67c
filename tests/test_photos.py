"""chat.photos: an upload is decoded once; copies, boxes and downloads stay exact."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chat import photos
from chat.photos import DISPLAY_SIDE, MODEL_SIDE, PhotoStore, fitted_size
from core import images
from core.export import ExportItem
from core.export.downloads import write_overlay, write_result_export
from core.export.masks import rle_to_mask
from core.pipeline import Generation, build_result
from core.render import render_overlay
from core.types import Intent
from tests.support.fakes import FakeModel

LIMITS = {"max_pixels": 40_000_000, "max_bytes": None}


def jpeg(size_wh, orientation: int | None = None) -> bytes:
    """A gradient JPEG; ``orientation`` sets the EXIF Orientation tag."""
    width, height = size_wh
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, exif=exif)
    return buffer.getvalue()


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """Counts calls of core.images.decode_image (the one expensive decode)."""
    calls: list[int] = []
    real = images.decode_image

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "decode_image", counting)
    return calls


def test_an_upload_is_decoded_once_for_every_later_turn(tmp_path, decodes) -> None:
    store = PhotoStore()
    display_path = tmp_path / "001.jpg"
    data = jpeg((4032, 3024))
    photo = store.ingest(data, display_path, **LIMITS)
    for _ in range(3):  # three turns on the same photo
        again = store.get(str(display_path), photo.original_wh)
        assert again is photo
    assert len(decodes) == 1
    store.flush()  # the copies are written in the background
    # Another process (or an evicted cache) reads the small copies, never the original.
    cold = PhotoStore(cache_size=0).get(str(display_path), photo.original_wh)
    assert len(decodes) == 1
    assert cold.display.size == photo.display.size
    assert cold.model_input.size == photo.model_input.size
    stored, kept = (np.asarray(p.model_input, np.int16) for p in (cold, photo))
    assert np.abs(stored - kept).mean() < 2  # a JPEG (quality 95) of the same pixels
    assert photos.original_path(display_path).read_bytes() == data


def test_copies_have_the_promised_sizes_and_exif_is_applied(tmp_path) -> None:
    # Orientation 6: the stored pixels are 400 wide, the photo is seen 300 wide.
    photo = PhotoStore().ingest(jpeg((4000, 3000), 6), tmp_path / "001.jpg", **LIMITS)
    assert photo.original_wh == (3000, 4000)
    # libjpeg decoded it at 1/2 scale: the display copy needs no resize.
    assert photo.display.size == (1500, 2000)
    assert photo.model_input.size == fitted_size((3000, 4000), MODEL_SIDE)
    assert max(photo.model_input.size) == MODEL_SIDE
    # A PNG is decoded in full and resized to exactly DISPLAY_SIDE.
    buffer = io.BytesIO()
    Image.new("RGB", (4100, 2050), (1, 2, 3)).save(buffer, format="PNG")
    png = PhotoStore().ingest(buffer.getvalue(), tmp_path / "002.jpg", **LIMITS)
    assert png.display.size == fitted_size((4100, 2050), DISPLAY_SIDE) == (2048, 1024)
    small = PhotoStore().ingest(jpeg((640, 480)), tmp_path / "003.jpg", **LIMITS)
    assert small.display.size == small.model_input.size == (640, 480)


def test_a_chat_saved_before_copies_existed_is_upgraded_once(tmp_path, decodes) -> None:
    legacy = tmp_path / "001.png"
    Image.new("RGB", (3000, 1000), (10, 20, 30)).save(legacy)
    photo = PhotoStore().get(str(legacy), (3000, 1000))
    assert photo.display.size == (2048, 683)
    assert len(decodes) == 1
    assert photos.model_path(legacy).is_file()
    with Image.open(photos.original_path(legacy)) as kept:
        assert kept.size == (3000, 1000)  # the full-size file was kept aside
    PhotoStore().get(str(legacy), (3000, 1000))
    assert len(decodes) == 1  # upgraded for good


SEGMENT_CAT = Intent(task="segment", prompt="segment cat", targets=("cat",))
# y1 x1 y2 x2 in 1024 bins: x 256..768, y 512..1024 of the original image
CAT = (
    "<loc0512><loc0256><loc1023><loc0768>"
    + "".join(f"<seg{i:03d}>" for i in range(16))
    + " cat"
)


def test_boxes_masks_and_downloads_stay_in_original_pixels(tmp_path) -> None:
    """The model sees a small copy; boxes, masks and files use the original size."""
    store = PhotoStore()
    photo = store.ingest(jpeg((4032, 3024)), tmp_path / "001.jpg", **LIMITS)
    model = FakeModel().enqueue(CAT)
    text = model.generate(photo.model_input, SEGMENT_CAT.prompt)
    assert model.calls[0]["image_size"] == (896, 672)
    result = build_result(
        photo.original_wh, Generation(SEGMENT_CAT, text, False, 64, 0.0), model
    )
    (det,) = result.detections
    assert det.box_px == (1008, 1512, 3024, 3021)  # 4032 * 256 / 1024 ...
    assert det.image_wh == (4032, 3024)
    assert det.mask_crop.shape == (3021 - 1512, 3024 - 1008)  # the box, not 12 MP

    overlay = render_overlay(photo.display, result.detections, source_wh=(4032, 3024))
    assert overlay.size == (2016, 1512)  # libjpeg's 1/2 scale
    shown = write_overlay(tmp_path / "001.jpg", "cat.jpg", overlay)
    item = ExportItem("cat.jpg", photo.original_wh, result.detections)
    assert shown.name == "cat-overlay.jpg"
    zip_file = write_result_export(tmp_path / "001.jpg", item, "zip")
    coco_file = write_result_export(tmp_path / "001.jpg", item, "coco")
    coco = json.loads(Path(coco_file.path).read_text())
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (4032, 3024)
    (annotation,) = coco["annotations"]
    assert np.array_equal(rle_to_mask(annotation["segmentation"]), det.mask)
    assert annotation["area"] == det.area
    with zipfile.ZipFile(zip_file.path) as archive:
        with archive.open("cat/01_cat.png") as member:
            mask_png = np.asarray(Image.open(member))
        assert "cat/overlay.png" not in archive.namelist()  # shown, not zipped
    assert mask_png.shape == (3024, 4032)
    assert np.array_equal(mask_png > 0, det.mask)


def test_a_read_right_after_the_upload_waits_for_its_copies(tmp_path, decodes) -> None:
    store = PhotoStore(cache_size=0)  # nothing kept in memory: files only
    path = tmp_path / "001.jpg"
    photo = store.ingest(jpeg((2400, 1800)), path, **LIMITS)
    again = store.get(str(path), photo.original_wh)  # the write may still run
    assert again.display.size == photo.display.size == (1200, 900)
    assert path.is_file() and photos.model_path(path).is_file()
    assert len(decodes) == 1


def test_a_region_on_a_smaller_copy_lands_in_original_pixels() -> None:
    """'region ...' is in photo pixels; the model sees that part of the copy."""
    from core.pipeline import generate
    from core.types import Region

    display = Image.new("RGB", (1000, 750))  # a copy of a 4000x3000 photo
    intent = Intent(
        task="segment",
        prompt="segment cat",
        targets=("cat",),
        region=Region("px", (2000, 1500, 4000, 3000)),  # the bottom-right quarter
    )
    model = FakeModel().enqueue(CAT)
    generation = generate(display, intent, model, source_wh=(4000, 3000))
    assert generation.crop_px == (2000, 1500, 4000, 3000)
    assert model.calls[0]["image_size"] == (500, 375)  # that quarter of the copy
    (det,) = build_result((4000, 3000), generation, model).detections
    # CAT: x 256..768 and y 512..1023 of 1024 -> of the 2000x1500 quarter
    assert det.box_px == (2000 + 500, 1500 + 750, 2000 + 1500, 1500 + 1499)
    assert det.image_wh == (4000, 3000)
    assert det.mask_xyxy is not None
    x1, y1, x2, y2 = det.mask_xyxy
    assert 2500 <= x1 and 2250 <= y1 and x2 <= 3500 and y2 <= 2999
