"""A turn's objects kept as JSON: label, box, and the mask as COCO RLE.

Most turns are rebuilt from the model's answer text (``ResultSummary.raw_text``)
for undo, export and redraw. A "look closely" turn merges several answers
(core.tiling), so no single text gives its objects back: its detections are
kept instead, each mask as the COCO RLE (pycocotools) of its tight crop. The
round trip is exact. Anything read back is checked: a saved state may be old,
partial or edited by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from core.types import Detection

MAX_KEPT_OBJECTS = 1000  # more than MAX_DETECTIONS allows: a snapshot is hostile
MASK_PHOTOS = 16  # all kept masks together: at most 16 times the photo's pixels


def keep_objects(detections: Iterable[Detection]) -> tuple[dict[str, Any], ...]:
    """JSON-safe copies of ``detections`` (see ``restore_objects``)."""
    kept = []
    for det in detections:
        item: dict[str, Any] = {"label": det.label, "box": list(det.box_px)}
        if det.has_mask:
            crop_h, crop_w = det.mask_crop_hw
            rle = mask_utils.encode(np.asfortranarray(det.mask_crop, dtype=np.uint8))
            item["mask"] = {
                "origin": list(det.mask_origin_xy),
                "size": [crop_h, crop_w],
                "counts": rle["counts"].decode("ascii"),
            }
        kept.append(item)
    return tuple(kept)


def restore_objects(
    objects: Iterable[Any], size_wh: tuple[int, int], *, max_pixels: int
) -> tuple[Detection, ...]:
    """``keep_objects`` output -> detections on a ``size_wh`` photo.

    Raises ValueError naming the object and what is wrong with it, before
    anything is decoded: the photo must have at most ``max_pixels`` pixels
    (MAX_IMAGE_PIXELS: ``size_wh`` comes from a saved state too), each mask
    must lie on it with RLE runs covering exactly its size, and all masks
    together at most MASK_PHOTOS photos' worth of pixels.
    """
    width, height = size_wh
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ValueError(
            f"the photo is said to be {width}x{height}, not 1 to {max_pixels:,} "
            "pixels (MAX_IMAGE_PIXELS)"
        )
    objects = list(objects)
    if len(objects) > MAX_KEPT_OBJECTS:
        raise ValueError(f"at most {MAX_KEPT_OBJECTS} kept objects, got {len(objects)}")
    budget = MASK_PHOTOS * width * height  # mask pixels left to decode
    restored = []
    for number, item in enumerate(objects, start=1):
        try:
            detection, budget = _restore(item, size_wh, budget)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"kept object {number} is malformed: {exc}") from exc
        restored.append(detection)
    return tuple(restored)


def _restore(item: Any, size_wh: tuple[int, int], budget: int) -> tuple[Detection, int]:
    """One kept object, and the mask pixels ``budget`` left after it."""
    if not isinstance(item, dict):
        raise TypeError(f"expected an object, got {type(item).__name__}")
    label = item.get("label")
    if label is not None and not isinstance(label, str):
        raise TypeError(f"label must be text or null, got {type(label).__name__}")
    box = _ints(item["box"], 4, "box")
    x1, y1, x2, y2 = box
    if not (0 <= x1 <= x2 <= size_wh[0] and 0 <= y1 <= y2 <= size_wh[1]):
        raise ValueError(f"box {box} is not on the {size_wh[0]}x{size_wh[1]} photo")
    mask = item.get("mask")
    if mask is None:
        return Detection(label, box, image_wh=size_wh), budget
    crop_h, crop_w, origin, counts = _mask_on_photo(mask, size_wh)
    if crop_h * crop_w > budget:
        raise ValueError(
            f"the masks together cover more than {MASK_PHOTOS} times the photo"
        )
    rle = {"size": [crop_h, crop_w], "counts": counts.encode("ascii")}
    crop = mask_utils.decode(rle).astype(bool)  # checked: at most the photo
    detection = Detection(
        label, box, mask_crop=crop, mask_origin_xy=origin, image_wh=size_wh
    )
    return detection, budget - crop_h * crop_w


def _mask_on_photo(
    mask: Any, size_wh: tuple[int, int]
) -> tuple[int, int, tuple[int, ...], str]:
    """(crop_h, crop_w, origin_xy, counts) of a kept mask that lies on the
    photo, with RLE runs covering exactly its crop; nothing decoded yet
    (pycocotools' C decoder trusts the size and the runs)."""
    crop_h, crop_w = _ints(mask["size"], 2, "mask size")
    counts = mask["counts"]
    if not isinstance(counts, str) or crop_h < 1 or crop_w < 1:
        raise ValueError(f"mask needs a size >= 1x1 and RLE counts, got {mask!r:.80}")
    width, height = size_wh
    if crop_h * crop_w > width * height:
        raise ValueError(f"mask {crop_w}x{crop_h} is larger than the photo")
    origin = _ints(mask["origin"], 2, "mask origin")
    x0, y0 = origin
    if not (0 <= x0 <= width - crop_w and 0 <= y0 <= height - crop_h):
        raise ValueError(
            f"mask {crop_w}x{crop_h} at {origin} must lie inside the "
            f"{width}x{height} photo"
        )
    runs = rle_runs(counts)
    if any(run < 0 for run in runs) or sum(runs) != crop_h * crop_w:
        raise ValueError(
            f"mask RLE must cover {crop_w}x{crop_h} = {crop_h * crop_w} pixels with "
            f"non-negative runs, got runs summing to {sum(runs)}"
        )
    return crop_h, crop_w, origin, counts


def rle_runs(counts: str) -> list[int]:
    """The run lengths in a COCO compressed RLE string (pycocotools' format:
    6-bit groups from chr 48, 0x20 continues, 0x10 of the last group signs,
    runs after the second stored as differences). ValueError if malformed."""
    runs: list[int] = []
    value = shift = 0
    for char in counts:
        code = ord(char) - 48
        if not 0 <= code < 64:
            raise ValueError(f"mask RLE has a character outside '0'..'o': {char!r}")
        value |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
        value = shift = 0
    if shift:
        raise ValueError("mask RLE ends in the middle of a number")
    return runs


def _ints(values: Any, count: int, what: str) -> tuple[int, ...]:
    if (
        not isinstance(values, list | tuple)
        or len(values) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise ValueError(f"{what} must be {count} integers, got {values!r:.60}")
    return tuple(values)
