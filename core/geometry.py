"""Model space -> original image: boxes to pixels, 64x64 mask logits to full masks.

Pure numpy (PIL only for the bilinear resize).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.tokens import MASK_SIDE
from core.types import BoxPx, BoxXYXY

ROWS_PER_BAND = 256  # mask rows resized at once (bounds the float32 scratch)


def box_to_pixels(box: BoxXYXY, size_wh: tuple[int, int]) -> BoxPx:
    """Normalised ``(x1, y1, x2, y2)`` in [0, 1] -> int pixels of a ``size_wh`` image.

    Rounded to the nearest pixel and clipped to the image.
    """
    width, height = size_wh
    x1, y1, x2, y2 = box
    return (
        _clip(round(x1 * width), width),
        _clip(round(y1 * height), height),
        _clip(round(x2 * width), width),
        _clip(round(y2 * height), height),
    )


def _clip(value: int, limit: int) -> int:
    return min(max(value, 0), limit)


def mask_logits_to_crop(logits: np.ndarray, box_px: BoxPx) -> np.ndarray:
    """One object's 64x64 mask logits resized into its box: bool ``(h, w)``.

    ``logits``: float [64, 64], decoder output centred on 0. The patch is
    resized bilinearly to the box size and thresholded at 0; the crop's
    top-left pixel is ``box_px[:2]`` of the original image. An empty box gives
    a ``(0, 0)`` crop.
    """
    logits = np.asarray(logits)
    if logits.shape != (MASK_SIDE, MASK_SIDE):
        raise ValueError(
            f"mask logits must be ({MASK_SIDE}, {MASK_SIDE}), got {logits.shape}"
        )
    x1, y1, x2, y2 = box_px
    box_w, box_h = x2 - x1, y2 - y1
    if box_w <= 0 or box_h <= 0:
        return np.zeros((0, 0), dtype=bool)
    patch = Image.fromarray(logits.astype(np.float32))  # mode "F"
    crop = np.empty((box_h, box_w), dtype=bool)
    # Row bands: a float32 copy of a whole 40 MP box would cost 160 MB. Pillow
    # places each output pixel by its centre in source coordinates, so a band
    # resized from its slice of the source (box=) equals those rows of the
    # whole resize.
    step = MASK_SIDE / box_h
    for top in range(0, box_h, ROWS_PER_BAND):
        rows = min(ROWS_PER_BAND, box_h - top)
        source = (0.0, top * step, float(MASK_SIDE), (top + rows) * step)
        band = patch.resize((box_w, rows), Image.Resampling.BILINEAR, box=source)
        crop[top : top + rows] = np.asarray(band) > 0  # logits are centred on 0
    return crop


def mask_logits_to_full(
    logits: np.ndarray, box_px: BoxPx, size_wh: tuple[int, int]
) -> np.ndarray:
    """``mask_logits_to_crop`` pasted into a zero mask: bool ``(H, W)`` of the
    original image. Costs H * W bytes: the pipeline keeps crops instead."""
    crop = mask_logits_to_crop(logits, box_px)
    width, height = size_wh
    full = np.zeros((height, width), dtype=bool)
    x1, y1 = box_px[:2]
    full[y1 : y1 + crop.shape[0], x1 : x1 + crop.shape[1]] = crop
    return full


def mask_to_xyxy(mask: np.ndarray) -> BoxPx | None:
    """Tight ``(x1, y1, x2, y2)`` (x2, y2 exclusive) of a bool mask; None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
