"""core.render: overlay drawing (golden PNG + properties) and the markdown table."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.render import (
    PALETTE,
    box_table_markdown,
    color_for,
    display_label,
    render_overlay,
    swatch_for,
    to_png_bytes,
)
from core.types import Detection
from scripts.update_goldens import GOLDEN_DIR, OVERLAY_GOLDEN, render_golden_overlay

GREY = (120, 120, 120)
PLAIN = {"show_boxes": False, "show_labels": False}


def grey(size_wh=(100, 100)) -> Image.Image:
    return Image.new("RGB", size_wh, GREY)


def rect_mask(size_wh, box_px) -> np.ndarray:
    """(H, W) bool, True inside ``box_px`` (x2/y2 exclusive)."""
    mask = np.zeros((size_wh[1], size_wh[0]), dtype=bool)
    x1, y1, x2, y2 = box_px
    mask[y1:y2, x1:x2] = True
    return mask


def blended(base, color, opacity: float) -> np.ndarray:
    return np.rint(np.multiply(base, 1 - opacity) + np.multiply(color, opacity))


def test_golden_overlay_pixel_exact(tmp_path: Path) -> None:
    actual = np.asarray(render_golden_overlay())
    with Image.open(GOLDEN_DIR / OVERLAY_GOLDEN) as golden_file:
        golden = np.asarray(golden_file.convert("RGB"))
    if actual.shape != golden.shape or not np.array_equal(actual, golden):
        out = tmp_path / "overlay_actual.png"
        Image.fromarray(actual).save(out)
        differing = (
            int(np.any(actual != golden, axis=-1).sum())
            if actual.shape == golden.shape
            else f"all (shape {actual.shape} vs {golden.shape})"
        )
        pytest.fail(
            f"overlay differs from the golden in {differing} pixels; actual saved to "
            f"{out}. If the change is intended: python -m scripts.update_goldens"
        )


@pytest.mark.parametrize("opacity", [0.5, 0.8])
def test_small_mask_inside_big_keeps_own_color(opacity: float) -> None:
    size = (100, 100)
    small = Detection("small", (40, 40, 60, 60), rect_mask(size, (40, 40, 60, 60)))
    big = Detection("big", (10, 10, 90, 90), rect_mask(size, (10, 10, 90, 90)))
    out = np.asarray(render_overlay(grey(), [small, big], opacity=opacity, **PLAIN))
    # The small one is listed first: drawn in list order the big one would hide it.
    assert np.abs(out[50, 50] - blended(GREY, color_for(0), opacity)).max() <= 1
    assert np.abs(out[20, 20] - blended(GREY, color_for(1), opacity)).max() <= 1
    assert np.array_equal(out[5, 5], GREY)  # outside every mask


def test_opacity_zero_leaves_mask_pixels_unchanged() -> None:
    image = Image.fromarray(
        np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    )
    size = image.size
    detections = [
        Detection("a", (10, 20, 70, 90), rect_mask(size, (30, 40, 65, 80))),
        Detection(None, (75, 5, 115, 60), rect_mask(size, (80, 15, 110, 50))),
    ]
    out = np.asarray(render_overlay(image, detections, opacity=0.0))
    original = np.asarray(image)
    # Mask pixels away from box outlines and label backgrounds.
    inner = rect_mask(size, (33, 43, 62, 77)) | rect_mask(size, (83, 35, 107, 47))
    assert np.array_equal(out[inner], original[inner])
    assert not np.array_equal(out, original)  # boxes and labels were drawn
    full = np.asarray(render_overlay(image, detections, opacity=1.0, **PLAIN))
    assert np.all(full[rect_mask(size, (80, 15, 110, 50))] == color_for(1))


def test_input_image_is_not_modified_and_any_mode_is_accepted() -> None:
    image = Image.new("RGBA", (60, 40), (*GREY, 255))
    before = image.tobytes()
    mask = rect_mask(image.size, (5, 5, 30, 30))
    out = render_overlay(image, [Detection("x", (5, 5, 30, 30), mask)], opacity=1.0)
    assert image.tobytes() == before
    assert out.mode == "RGB" and out.size == image.size
    assert out.getpixel((15, 15)) == color_for(0)


@pytest.mark.parametrize(
    ("show_labels", "show_boxes", "label_drawn", "outline_drawn"),
    [
        (True, True, True, True),  # both
        (True, False, True, False),  # labels only
        (False, True, False, True),  # boxes only
        (False, False, False, False),  # neither: the image comes back unchanged
    ],
)
def test_labels_and_boxes_switches(
    show_labels: bool, show_boxes: bool, label_drawn: bool, outline_drawn: bool
) -> None:
    detections = [Detection("dog", (30, 50, 80, 90), None)]
    out = render_overlay(
        grey((200, 150)), detections, show_labels=show_labels, show_boxes=show_boxes
    )
    color = color_for(0)
    assert (out.getpixel((30, 48)) == color) is label_drawn  # above the box
    assert (out.getpixel((30, 70)) == color) is outline_drawn  # left edge
    assert out.getpixel((55, 70)) == GREY  # box-only object: interior untouched
    if not (show_labels or show_boxes):
        assert out.tobytes() == grey((200, 150)).tobytes()


@pytest.mark.parametrize(
    ("box_px", "inside_xy", "outside_xy"),
    [
        ((40, 0, 120, 60), (40, 1), (40, 70)),  # box at the top: label inside it
        ((190, 60, 200, 100), (199, 58), (150, 40)),  # right edge: label shifted left
        ((0, 30, 50, 80), (0, 28), (150, 28)),  # left edge
    ],
)
def test_label_stays_inside_the_image(box_px, inside_xy, outside_xy) -> None:
    detections = [Detection("a fairly long label", box_px, None)]
    out = render_overlay(grey((200, 150)), detections, show_boxes=False)
    assert out.getpixel(inside_xy) == color_for(0)
    assert out.getpixel(outside_xy) == GREY


@pytest.mark.parametrize(
    ("size_wh", "thickness"),
    [((200, 200), 2), ((1000, 1000), 4), ((2000, 1500), 6)],  # small, mid, big
)
def test_box_outline_width_scales_with_image(size_wh, thickness: int) -> None:
    box = (50, 50, 150, 150)
    out = np.asarray(render_overlay(grey(size_wh), [Detection("a", box, None)]))
    row = out[100, 50 : 50 + thickness + 1]
    assert np.all(row[:thickness] == color_for(0))  # drawn inside the box
    assert np.array_equal(row[thickness], GREY)


def test_unlabelled_objects_are_numbered_and_palette_is_distinct() -> None:
    assert display_label(Detection(None, (0, 0, 1, 1)), 2) == "object 3"
    assert display_label(Detection("a\nb", (0, 0, 1, 1)), 0) == "a b"
    assert len(set(PALETTE)) == len(PALETTE) >= 10
    assert color_for(len(PALETTE)) == color_for(0)
    with_label = render_overlay(grey(), [Detection("ab", (20, 40, 60, 60))])
    without = render_overlay(grey(), [Detection(None, (20, 40, 60, 60))])
    assert with_label.tobytes() != without.tobytes()  # "object 1" is drawn


@pytest.mark.parametrize(
    ("detection", "opacity", "message"),
    [
        (Detection("a", (0, 0, 5, 5), np.zeros((64, 64), bool)), 0.5, "(100, 100)"),
        (Detection("a", (0, 0, 5, 5), None), 1.5, "opacity"),
    ],
    ids=["mask-64x64", "opacity-1.5"],  # a uint8 mask: Detection refuses it
)
def test_bad_inputs_raise(detection: Detection, opacity: float, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        render_overlay(grey(), [detection], opacity=opacity)


def test_to_png_bytes_round_trips() -> None:
    image = render_golden_overlay()
    data = to_png_bytes(image)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.tobytes() == image.tobytes()


def test_box_table_markdown() -> None:
    mask = rect_mask((100, 100), (10, 20, 30, 25))  # 20 * 5 = 100 pixels
    detections = [
        Detection("car | red", (10, 20, 30, 25), mask),
        Detection(None, (1, 2, 3, 4), None),
        Detection("two\nlines_*x*", (5, 6, 7, 8), None),
    ]
    lines = box_table_markdown(detections).splitlines()
    assert lines[0] == "| # | label | x1 | y1 | x2 | y2 | mask area (px) |"
    assert lines[1].count("|") == 8
    assert lines[2] == "| 🟥 1 | car \\| red | 10 | 20 | 30 | 25 | 100 |"
    assert lines[3] == "| 🟩 2 | object 2 | 1 | 2 | 3 | 4 | — |"
    assert lines[4] == "| 🟦 3 | two lines_\\*x\\* | 5 | 6 | 7 | 8 | — |"
    assert len(lines) == 5
    kept = box_table_markdown(detections, hidden={2}).splitlines()
    assert [line.split(" | ")[0] for line in kept[2:]] == ["| 🟥 1", "| 🟦 3"]


# The colour each square emoji shows (Unicode's reference RGB, approximately).
EMOJI_RGB = {
    "🟥": (221, 46, 68),
    "🟧": (244, 144, 12),
    "🟨": (253, 203, 88),
    "🟩": (120, 177, 89),
    "🟦": (85, 172, 238),
    "🟪": (170, 142, 214),
    "🟫": (193, 105, 79),
}


def test_each_swatch_is_the_nearest_square_to_its_colour() -> None:
    for index, color in enumerate(PALETTE):
        nearest = min(EMOJI_RGB, key=lambda e: math.dist(EMOJI_RGB[e], color))
        assert swatch_for(index) == nearest, (index, color)


def test_hidden_objects_are_not_drawn_and_others_keep_their_colour() -> None:
    left = Detection("a", (10, 10, 40, 40), rect_mask((100, 100), (10, 10, 40, 40)))
    right = Detection("b", (60, 60, 90, 90), rect_mask((100, 100), (60, 60, 90, 90)))
    out = np.asarray(render_overlay(grey(), [left, right], opacity=1.0, hidden={1}))
    assert tuple(out[25, 25]) == tuple(grey().getpixel((25, 25)))  # 1 hidden
    assert tuple(out[75, 75]) == PALETTE[1]  # 2 keeps its colour


def test_box_table_markdown_empty() -> None:
    assert box_table_markdown([]) == "No objects found."


def _black(size_wh) -> Image.Image:
    return Image.new("RGB", size_wh, (0, 0, 0))


@pytest.mark.parametrize(
    ("source_wh", "display_wh"),
    [
        ((400, 300), (200, 150)),  # case: exactly half
        ((4032, 3024), (2048, 1536)),  # case: a 12 MP photo's display copy
        ((333, 197), (101, 60)),  # case: odd ratio
    ],
)
def test_overlay_on_a_display_copy_is_the_original_overlay_sampled(
    source_wh, display_wh
) -> None:
    """Masks in original pixels land where nearest sampling puts them."""
    width, height = source_wh
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 5 : height // 2, width // 3 : width - 7] = True
    mask[height - 3 :, :5] = True  # a sliver at the bottom-left corner
    det = Detection("thing", (0, 0, width, height), mask)
    out = render_overlay(
        _black(display_wh), [det], opacity=1.0, source_wh=source_wh, **PLAIN
    )
    drawn = np.any(np.asarray(out) != 0, axis=-1)
    cols = np.floor((np.arange(display_wh[0]) + 0.5) * width / display_wh[0])
    rows = np.floor((np.arange(display_wh[1]) + 0.5) * height / display_wh[1])
    expected = mask[np.ix_(rows.astype(int), cols.astype(int))]
    assert np.array_equal(drawn, expected)


def test_boxes_in_original_pixels_are_drawn_scaled_on_the_display_copy() -> None:
    det = Detection("car", (100, 60, 300, 240))  # on a 400x300 original
    out = render_overlay(
        _black((200, 150)), [det], source_wh=(400, 300), show_labels=False
    )
    drawn = np.any(np.asarray(out) != 0, axis=-1)
    ys, xs = np.nonzero(drawn)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (50, 30, 150, 120)
    row = box_table_markdown([det]).splitlines()[2]
    assert "| car | 100 | 60 | 300 | 240 |" in row  # the table keeps original pixels
