from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest
from PIL import Image

from core.geometry import box_to_pixels, mask_logits_to_full, mask_to_xyxy
from tests.support.fakes import disc_logits


@pytest.mark.parametrize(
    ("box", "size_wh", "expected"),
    [
        ((0.0, 0.0, 1.0, 1.0), (640, 480), (0, 0, 640, 480)),  # whole image
        ((0.25, 0.5, 0.75, 1.0), (100, 200), (25, 100, 75, 200)),  # exact
        (
            (157 / 1024, 591 / 1024, 311 / 1024, 794 / 1024),
            (640, 480),
            (98, 277, 194, 372),
        ),  # real wheel
        ((-0.1, -0.2, 1.3, 1.1), (50, 40), (0, 0, 50, 40)),  # clipped
        ((0.1, 0.1, 0.2, 0.2), (1, 1), (0, 0, 0, 0)),  # tiny image
    ],
)
def test_box_to_pixels(box, size_wh, expected):
    assert box_to_pixels(box, size_wh) == expected


def test_mask_is_full_size_and_inside_its_box():
    size_wh = (640, 480)
    box_px = (98, 277, 194, 372)
    mask = mask_logits_to_full(disc_logits(1)[0], box_px, size_wh)
    assert mask.shape == (480, 640)
    assert mask.dtype == bool
    x1, y1, x2, y2 = mask_to_xyxy(mask)
    assert box_px[0] <= x1 and box_px[1] <= y1 and x2 <= box_px[2] and y2 <= box_px[3]
    # A disc of radius 1/3 of the side covers about pi/9 of its box.
    box_area = (box_px[2] - box_px[0]) * (box_px[3] - box_px[1])
    assert mask.sum() / box_area == pytest.approx(np.pi / 9, rel=0.05)
    # Centred in the box.
    ys, xs = np.nonzero(mask)
    assert xs.mean() == pytest.approx((98 + 194) / 2, abs=1.0)
    assert ys.mean() == pytest.approx((277 + 372) / 2, abs=1.0)


def test_mask_threshold_at_zero():
    logits = np.full((64, 64), -0.5, dtype=np.float32)
    logits[:, 32:] = 0.5  # right half positive
    mask = mask_logits_to_full(logits, (0, 0, 128, 64), (128, 64))
    assert not mask[:, :60].any()
    assert mask[:, 68:].all()


@pytest.mark.parametrize(
    ("logits_shape", "box_px", "expectation"),
    [
        ((64, 64), (10, 10, 10, 20), does_not_raise()),  # zero-width box -> empty
        ((64, 64), (10, 20, 30, 5), does_not_raise()),  # inverted box -> empty
        ((32, 32), (0, 0, 10, 10), pytest.raises(ValueError, match=r"\(64, 64\)")),
        ((1, 64, 64), (0, 0, 10, 10), pytest.raises(ValueError, match="got")),
    ],
)
def test_mask_placement_edge_cases(logits_shape, box_px, expectation):
    with expectation:
        mask = mask_logits_to_full(np.ones(logits_shape, np.float32), box_px, (40, 30))
        assert mask.shape == (30, 40)
        assert not mask.any()


def test_mask_to_xyxy_empty():
    assert mask_to_xyxy(np.zeros((5, 5), bool)) is None


def test_mask_to_xyxy_is_tight_with_exclusive_ends():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True  # rows 2..4, columns 3..8
    assert mask_to_xyxy(mask) == (3, 2, 9, 5)


@pytest.mark.parametrize(
    ("box_px", "pixels"),
    [
        ((5, 5, 6, 9), 4),  # case: one pixel wide box still gets its mask
        ((5, 5, 9, 6), 4),  # case: one pixel high
        ((5, 5, 9, 5), 0),  # case: zero height: empty, no error
        ((5, 5, 5, 9), 0),  # case: zero width
    ],
)
def test_thin_and_empty_boxes(box_px, pixels):
    full = mask_logits_to_full(np.ones((64, 64), np.float32), box_px, (16, 16))
    assert full.shape == (16, 16) and int(full.sum()) == pixels


def test_logits_of_exactly_zero_are_background():
    zero = mask_logits_to_full(np.zeros((64, 64), np.float32), (0, 0, 8, 8), (8, 8))
    assert not zero.any()  # threshold is > 0: logits are centred on 0


@pytest.mark.parametrize(
    "box_wh",
    [(7, 5), (300, 700), (4032, 3024), (1000, 257), (33, 1)],
    ids=["tiny", "tall", "12mp", "one-band-and-a-bit", "one-row"],
)
def test_banded_mask_placement_equals_one_whole_resize(box_wh) -> None:
    """Row bands (bounded memory) give the whole-box resize's pixels; only
    logits within float rounding of the 0 threshold may flip."""
    from core.geometry import mask_logits_to_crop

    width, height = box_wh
    logits = np.random.default_rng(width).normal(size=(64, 64)).astype(np.float32)
    whole = np.asarray(
        Image.fromarray(logits).resize((width, height), Image.Resampling.BILINEAR)
    )
    crop = mask_logits_to_crop(logits, (10, 20, 10 + width, 20 + height))
    assert crop.shape == (height, width) and crop.dtype == bool
    differ = crop != (whole > 0)
    assert np.abs(whole[differ]).max(initial=0.0) < 1e-5
    assert differ.sum() <= 10


def _bilinear_upsample(logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """Reference bilinear resize (pixel centres, edges clamped), numpy only."""
    side = logits.shape[0]

    def along(values: np.ndarray, size: int) -> np.ndarray:
        centres = (np.arange(size) + 0.5) * side / size - 0.5
        return np.stack([np.interp(centres, np.arange(side), row) for row in values])

    rows = along(logits.astype(np.float64), width)  # (64, width)
    return along(rows.T, height).T  # (height, width)


@pytest.mark.parametrize("box_wh", [(150, 300), (64, 64), (97, 65)])
def test_mask_is_the_bilinear_resize_of_the_logits(box_wh) -> None:
    """Boxes larger than the 64x64 patch: the crop is the patch resized
    bilinearly (not bicubic, not nearest), computed here without Pillow."""
    from core.geometry import mask_logits_to_crop

    width, height = box_wh
    logits = np.random.default_rng(7).normal(size=(64, 64)).astype(np.float32)
    expected = _bilinear_upsample(logits, width, height)
    crop = mask_logits_to_crop(logits, (3, 4, 3 + width, 4 + height))
    clear = np.abs(expected) > 1e-4  # away from float rounding at the threshold
    assert clear.mean() > 0.99
    assert np.array_equal(crop[clear], expected[clear] > 0)


@pytest.mark.parametrize(
    "box_px",
    [(40, 30, 40, 30), (0, 30, 40, 30), (40, 0, 40, 30), (12, 7, 12, 7)],
    ids=["corner", "bottom-edge", "right-edge", "inside"],
)
def test_an_empty_box_with_a_mask_becomes_an_empty_detection(box_px) -> None:
    """A segmented object whose box clips to nothing (past the image edge)
    gives a (0, 0) bool crop that the pipeline can place: no crash."""
    from core.geometry import mask_logits_to_crop
    from core.types import Detection

    crop = mask_logits_to_crop(np.ones((64, 64), np.float32), box_px)
    assert crop.shape == (0, 0) and crop.dtype == bool
    det = Detection(
        "cat", box_px, mask_crop=crop, mask_origin_xy=box_px[:2], image_wh=(40, 30)
    )
    assert det.has_mask and det.area == 0
    assert not det.mask.any()
