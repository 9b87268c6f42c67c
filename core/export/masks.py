"""Mask encodings: COCO RLE (pycocotools), PNG, and polygons (OpenCV).

RLE is exact (holes kept). Polygons are ``(N, 2)`` arrays of ``(x, y)``
vertices in *pixel-index* coordinates of the mask: a vertex ``(x, y)`` is the
centre of pixel ``mask[y, x]``. This is the convention of ``cv2.findContours`` and
``cv2.fillPoly`` (and of roboflow/supervision and Ultralytics' YOLO
rasterisation), so ``polygon_to_mask(p, size_wh)`` restores the pixels of the
outline exactly. Outer contours only: holes are filled (a ring becomes a disc),
as in every polygon export of the field; use RLE to keep holes.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

logger = logging.getLogger(__name__)


def check_mask(mask: object, size_wh: tuple[int, int] | None = None) -> np.ndarray:
    """Return ``mask`` as an ``(H, W)`` bool array or raise ValueError.

    When ``size_wh`` is given the mask must be ``(size_wh[1], size_wh[0])``.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.bool_:
        got = (
            f"{mask.shape} {mask.dtype}"
            if isinstance(mask, np.ndarray)
            else type(mask).__name__
        )
        raise ValueError(f"mask must be an (H, W) bool array, got {got}")
    if size_wh is not None and mask.shape != (size_wh[1], size_wh[0]):
        raise ValueError(
            f"mask must be (H, W) = ({size_wh[1]}, {size_wh[0]}) for an image of "
            f"size_wh {tuple(size_wh)}, got {mask.shape}"
        )
    return mask


def mask_to_polygons(mask: np.ndarray, *, min_area: float = 0.0) -> list[np.ndarray]:
    """All outer contours of ``mask`` as polygons, largest first.

    ``mask`` is ``(H, W)`` bool. Returns a list of int32 ``(N, 2)`` arrays of
    ``(x, y)`` pixel indices, one per connected part (8-connectivity).
    Degenerate outlines are dropped: fewer than 3 vertices (single pixels,
    1-pixel-wide straight lines) or an enclosed area <= ``min_area`` (in
    pixels, measured between pixel centres, so a 2x2 block has area 1).
    An empty mask gives ``[]``.
    """
    mask = check_mask(mask)
    if not mask.any():
        return []
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8),
        cv2.RETR_EXTERNAL,  # outer outlines only; holes are filled
        cv2.CHAIN_APPROX_SIMPLE,  # keep only the corners of straight runs
    )
    polygons: list[tuple[float, np.ndarray]] = []
    dropped = 0
    for contour in contours:
        points = contour.reshape(-1, 2).astype(np.int32)
        area = float(cv2.contourArea(points))
        if len(points) < 3 or area <= min_area:
            dropped += 1
            continue
        polygons.append((area, points))
    if dropped:
        logger.debug("mask_to_polygons dropped %d degenerate outlines", dropped)
    polygons.sort(key=lambda item: -item[0])
    return [points for _, points in polygons]


def polygon_to_mask(
    polygon: np.ndarray | Sequence[Sequence[float]], size_wh: tuple[int, int]
) -> np.ndarray:
    """Rasterise one polygon (``(N, 2)`` x, y pixel indices) to ``(H, W)`` bool.

    Vertices are rounded to the nearest pixel; pixels on the outline count as
    inside, as with ``cv2.fillPoly``. Fewer than 3 vertices raise ValueError.
    """
    return polygons_to_mask([polygon], size_wh)


def polygons_to_mask(
    polygons: Sequence[np.ndarray | Sequence[Sequence[float]]],
    size_wh: tuple[int, int],
) -> np.ndarray:
    """Union of several polygons (see ``polygon_to_mask``) as ``(H, W)`` bool."""
    width, height = size_wh
    if width <= 0 or height <= 0:
        raise ValueError(f"size_wh must be positive (width, height), got {size_wh}")
    canvas = np.zeros((height, width), dtype=np.uint8)
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or len(points) < 3:
            raise ValueError(
                f"polygon must be (N, 2) x, y vertices with N >= 3, "
                f"got shape {points.shape}"
            )
        # fillPoly on each polygon alone: a union, not an even-odd fill.
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1)
    return canvas.astype(bool)


# RLE and PNG ------------------------------------------------------------------


def mask_to_rle(mask: np.ndarray) -> dict:
    """``(H, W)`` bool -> COCO compressed RLE ``{"size": [H, W], "counts": str}``."""
    mask = check_mask(mask)
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


def _pyco_rle(rle: dict) -> dict:
    """A pycocotools-ready compressed RLE from compressed or uncompressed RLE."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE, as in COCO crowd annotations
        return mask_utils.frPyObjects(rle, height, width)
    if isinstance(counts, str):
        counts = counts.encode()
    return {"size": [height, width], "counts": counts}


def rle_to_mask(rle: dict) -> np.ndarray:
    """COCO RLE (compressed str/bytes or uncompressed list) -> ``(H, W)`` bool."""
    return np.ascontiguousarray(mask_utils.decode(_pyco_rle(rle)), dtype=bool)


def rle_area(rle: dict) -> int:
    """Number of pixels set in ``rle``."""
    return int(mask_utils.area(_pyco_rle(rle)))


def rle_bbox(rle: dict) -> list[float]:
    """Tight box ``[x, y, w, h]`` of ``rle``'s pixels; ``[0, 0, 0, 0]`` if empty."""
    return [float(v) for v in mask_utils.toBbox(_pyco_rle(rle))]


def mask_to_png(mask: np.ndarray) -> bytes:
    """``(H, W)`` bool -> PNG bytes, mode "L", 0 outside and 255 inside."""
    mask = check_mask(mask)
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
