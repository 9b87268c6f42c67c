"""core.types.Detection: validated when built, mask kept as a box crop."""

from __future__ import annotations

import re
from contextlib import nullcontext as does_not_raise
from dataclasses import replace

import numpy as np
import pytest

from core.types import Detection

FULL = np.zeros((20, 30), dtype=bool)  # (H, W) of a 30x20 image


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({"box_px": (1, 2, 3, 4)}, does_not_raise()),  # box only
        ({"box_px": (3, 3, 3, 9)}, does_not_raise()),  # empty but ordered
        ({"box_px": (1, 2, 3, 4), "mask": FULL}, does_not_raise()),  # full mask
        (
            {"box_px": (5, 0, 2, 3)},
            pytest.raises(ValueError, match=re.escape("ordered (x1 <= x2, y1 <= y2)")),
        ),  # x reversed
        (
            {"box_px": (0, 5, 2, 3)},
            pytest.raises(ValueError, match=re.escape("got (0, 5, 2, 3)")),
        ),  # y reversed
        (
            {"box_px": (0, 0, 2)},
            pytest.raises(ValueError, match="4 integer pixels"),
        ),  # three numbers
        (
            {"box_px": (0.5, 0, 2, 3)},
            pytest.raises(ValueError, match="4 integer pixels"),
        ),  # a fraction
        (
            {"box_px": (0, 0, 1, 1), "mask": np.zeros((64, 64), np.float32)},
            pytest.raises(ValueError, match=re.escape("got (64, 64) float32")),
        ),  # raw logits
        (
            {"box_px": (0, 0, 1, 1), "mask": np.zeros((4, 4, 1), bool)},
            pytest.raises(ValueError, match=re.escape("(H, W) bool")),
        ),  # 3-D
        (
            {"box_px": (0, 0, 1, 1), "mask": [[True]]},
            pytest.raises(ValueError, match="got list"),
        ),  # not an array
        (
            {
                "box_px": (0, 0, 1, 1),
                "mask_crop": np.ones((5, 5), bool),
                "mask_origin_xy": (28, 0),
                "image_wh": (30, 20),
            },
            pytest.raises(ValueError, match="inside the 30x20 image"),
        ),  # crop sticks out
        (
            {"box_px": (0, 0, 1, 1), "mask_crop": np.ones((5, 5), bool)},
            pytest.raises(ValueError, match="needs image_wh"),
        ),  # crop without its image size
        (
            {"box_px": (0, 0, 1, 1), "mask": FULL, "mask_crop": FULL},
            pytest.raises(ValueError, match="got both"),
        ),  # two masks
    ],
)
def test_detection_validates_itself(kwargs, expectation) -> None:
    with expectation:
        Detection("x", **kwargs)


def test_full_mask_is_kept_as_its_tight_crop_and_restored_exactly() -> None:
    mask = np.zeros((3000, 4000), dtype=bool)  # 12 MP
    mask[100:150, 2000:2080] = True
    mask[120, 2100] = True  # a stray pixel widens the tight box
    det = Detection("cat", (1990, 90, 2110, 160), mask)
    assert det.mask_origin_xy == (2000, 100)
    assert det.mask_crop.shape == (50, 101)
    assert det.mask_bits.nbytes == 50 * 13  # 101 bits per row, packed
    assert det.mask_bits.nbytes < mask.nbytes / 10_000
    assert det.image_wh == (4000, 3000)
    assert det.area == 50 * 80 + 1 == int(mask.sum())
    assert det.mask_xyxy == (2000, 100, 2101, 150)
    assert np.array_equal(det.mask, mask)
    assert det.has_mask


def test_empty_and_missing_masks() -> None:
    empty = Detection("blank", (1, 1, 5, 5), np.zeros((10, 20), bool))
    assert empty.has_mask and empty.area == 0 and empty.mask_xyxy is None
    assert empty.mask.shape == (10, 20) and not empty.mask.any()
    boxed = Detection("box", (2, 3, 12, 9))
    assert not boxed.has_mask and boxed.mask is None
    assert boxed.area == 10 * 6


def test_crop_built_directly_and_replace_keep_working() -> None:
    crop = np.ones((4, 6), bool)
    det = Detection(
        "dog", (10, 5, 16, 9), mask_crop=crop, mask_origin_xy=(10, 5), image_wh=(40, 30)
    )
    assert det.mask.shape == (30, 40) and int(det.mask[5:9, 10:16].sum()) == 24
    renamed = replace(det, label="puppy")
    assert renamed.label == "puppy" and renamed.mask_bits is det.mask_bits
    assert np.array_equal(renamed.mask_crop, crop)
    assert renamed.mask_origin_xy == (10, 5) and renamed.image_wh == (40, 30)
