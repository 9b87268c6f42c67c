"""Model space -> original image: boxes to pixels, 64x64 mask logits to full masks.

Pure numpy (PIL only for the bilinear resize).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.tokens import MASK_SIDE
from core.types import BoxPx, BoxXYXY


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


def mask_logits_to_full(
    logits: np.ndarray, box_px: BoxPx, size_wh: tuple[int, int]
) -> np.ndarray:
    """Place one object's 64x64 mask logits into its box on the original image.

    ``logits``: float [64, 64], decoder output centred on 0. The patch is
    resized bilinearly to the box size, thresholded at 0 and pasted into a
    zero mask. Returns bool ``(H, W)`` of the original image.
    """
    logits = np.asarray(logits)
    if logits.shape != (MASK_SIDE, MASK_SIDE):
        raise ValueError(
            f"mask logits must be ({MASK_SIDE}, {MASK_SIDE}), got {logits.shape}"
        )
    width, height = size_wh
    full = np.zeros((height, width), dtype=bool)
    x1, y1, x2, y2 = box_px
    box_w, box_h = x2 - x1, y2 - y1
    if box_w <= 0 or box_h <= 0:
        return full
    patch = Image.fromarray(logits.astype(np.float32))  # mode "F"
    resized = np.asarray(patch.resize((box_w, box_h), Image.Resampling.BILINEAR))
    full[y1:y2, x1:x2] = resized > 0  # decoder logits are centred on 0
    return full


def mask_to_xyxy(mask: np.ndarray) -> BoxPx | None:
    """Tight ``(x1, y1, x2, y2)`` (x2, y2 exclusive) of a bool mask; None if empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
