"""Draw detections on the original image; format them as a markdown table.

Colours follow the object index (``PALETTE[i % len(PALETTE)]``) so the overlay,
the box list and the downloads agree on which colour is which object.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.security.markdown import escape_markdown
from core.types import Detection

logger = logging.getLogger(__name__)

# Distinct, saturated colours (RGB 0..255), in the order objects get them.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (255, 225, 25),  # yellow
    (145, 30, 180),  # purple
    (245, 130, 48),  # orange
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (128, 128, 0),  # olive
    (0, 128, 128),  # teal
    (170, 110, 40),  # brown
    (128, 0, 0),  # maroon
)
# The nearest (RGB distance) coloured square emoji of each PALETTE entry: the box
# table's swatch (chat markdown cannot colour text; numbers tell equal ones apart).
SWATCHES: tuple[str, ...] = (
    "\U0001f7e5",  # red
    "\U0001f7e9",  # green
    "\U0001f7e6",  # blue
    "\U0001f7e8",  # yellow
    "\U0001f7ea",  # purple
    "\U0001f7e7",  # orange
    "\U0001f7e6",  # cyan
    "\U0001f7ea",  # magenta
    "\U0001f7e9",  # olive
    "\U0001f7e9",  # teal
    "\U0001f7eb",  # brown
    "\U0001f7e5",  # maroon
)


def color_for(index: int) -> tuple[int, int, int]:
    """RGB colour of the object at ``index`` (0-based) in a detection list."""
    return PALETTE[index % len(PALETTE)]


def swatch_for(index: int) -> str:
    """The coloured square emoji nearest to ``color_for(index)``."""
    return SWATCHES[index % len(SWATCHES)]


def display_label(detection: Detection, index: int) -> str:
    """The label shown to users: the model's label, or "object N" (1-based)."""
    label = " ".join((detection.label or "").split())  # newlines/tabs -> spaces
    return label or f"object {index + 1}"


def overlay_label(detection: Detection, index: int) -> str:
    """The text drawn on the overlay: "#N label", N as in the box table."""
    label = " ".join((detection.label or "").split())
    return f"#{index + 1} {label}" if label else f"#{index + 1}"


def render_overlay(
    image: Image.Image,
    detections: Sequence[Detection],
    *,
    opacity: float = 0.5,
    show_labels: bool = True,
    show_boxes: bool = True,
    hidden: Collection[int] = (),
    source_wh: tuple[int, int] | None = None,
) -> Image.Image:
    """Draw masks, boxes and labels on a copy of ``image``.

    Args:
        image: what to draw on, any mode (drawn on as RGB); left unchanged.
            The original image, or a smaller display copy of it.
        detections: boxes and masks in pixels of the *original* image.
        opacity: mask colour weight in [0, 1]; 0 leaves mask pixels unchanged.
        show_labels: draw "#N label" (N the 1-based object number, as in the
            box table) on a filled background at the box's top-left corner.
        show_boxes: draw box outlines, width scaled to the image size.
        hidden: 1-based numbers of objects not to draw; the others keep
            their numbers and colours.
        source_wh: the original image's ``(width, height)`` when ``image`` is a
            display copy; None when ``image`` is the original. Boxes and masks
            are scaled by ``image.size / source_wh`` (masks by nearest pixel).

    Returns:
        A new RGB image of ``image.size``. Masks are drawn largest first, so a
        small mask inside a big one keeps its own colour.
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    width, height = image.size
    source_wh = tuple(source_wh or image.size)
    _check_mask_sizes(detections, source_wh)
    scale = _Scale(width / source_wh[0], height / source_wh[1])
    canvas = image.copy() if image.mode == "RGB" else image.convert("RGB")
    shown = [i for i in range(len(detections)) if i + 1 not in hidden]
    order = sorted(shown, key=lambda i: -detections[i].area)
    _blend_masks(canvas, detections, order, opacity, scale)
    draw = ImageDraw.Draw(canvas)
    boxes = [scale.box(d.box_px) for d in detections]
    if show_boxes:
        thickness = max(2, round(min(width, height) / 250))
        for index in order:
            corners = _clamped_corners(boxes[index], (width, height))
            if corners is not None:
                draw.rectangle(corners, outline=color_for(index), width=thickness)
    if show_labels:
        font = _font(max(10, round(min(width, height) / 40)))
        for index in order:  # largest first: small objects' labels end on top
            text = overlay_label(detections[index], index)
            _draw_label(draw, boxes[index], text, index, font, (width, height))
    return canvas


def _check_mask_sizes(
    detections: Sequence[Detection], source_wh: tuple[int, int]
) -> None:
    """ValueError unless every mask is of the original image, ``source_wh``."""
    for index, detection in enumerate(detections):
        if detection.has_mask and detection.image_wh != source_wh:
            got_w, got_h = detection.image_wh or (0, 0)
            raise ValueError(
                f"detection {index}: mask must be (H, W) = ({source_wh[1]}, "
                f"{source_wh[0]}) of the image drawn on (or source_wh), "
                f"got ({got_h}, {got_w})"
            )


@dataclass(frozen=True)
class _Scale:
    """Original-image pixels -> drawn-image pixels (display copy or 1:1)."""

    x: float
    y: float

    def box(self, box_px: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        if self.x == 1.0 and self.y == 1.0:
            return box_px
        x1, y1, x2, y2 = box_px
        return (
            round(x1 * self.x),
            round(y1 * self.y),
            round(x2 * self.x),
            round(y2 * self.y),
        )

    def crop_on_canvas(
        self, detection: Detection, canvas_hw: tuple[int, int]
    ) -> tuple[int, int, np.ndarray] | None:
        """(left, top, bool patch) of ``detection``'s mask on the canvas.

        Each canvas pixel takes the original pixel under its centre (nearest):
        canvas column u samples original column floor((u + 0.5) / scale).
        """
        crop = detection.mask_crop
        if crop is None or crop.size == 0:
            return None
        x0, y0 = detection.mask_origin_xy
        if self.x == 1.0 and self.y == 1.0:
            return x0, y0, crop
        cols = _samples(x0, crop.shape[1], self.x, canvas_hw[1])
        rows = _samples(y0, crop.shape[0], self.y, canvas_hw[0])
        if cols is None or rows is None:
            return None
        (left, col_idx), (top, row_idx) = cols, rows
        return left, top, crop[np.ix_(row_idx, col_idx)]


def _samples(
    start: int, length: int, scale: float, limit: int
) -> tuple[int, np.ndarray] | None:
    """First canvas index and the crop indices sampled by canvas pixels whose
    centres fall on original pixels ``start .. start + length - 1``."""
    first = max(0, math.ceil(start * scale - 0.5))
    stop = min(limit, math.ceil((start + length) * scale - 0.5))
    if stop <= first:
        return None
    canvas = np.arange(first, stop)
    index = np.floor((canvas + 0.5) / scale).astype(np.int64) - start
    return first, np.clip(index, 0, length - 1)


def _blend_masks(
    canvas: Image.Image,
    detections: Sequence[Detection],
    order: Sequence[int],
    opacity: float,
    scale: _Scale,
) -> None:
    """In place: each pixel takes the colour of its top (smallest) mask, blended once.

    An ``owner`` map (0 = no mask, i + 1 = object i) over the window holding
    the masks decides which object a pixel shows; each object's pixels are
    then pasted with a constant alpha of ``round(opacity * 255)``. Pillow's
    paste computes ``(value * (255 - w) + colour * w + 127) // 255`` exactly,
    so goldens are identical on every machine.
    """
    weight = round(opacity * 255)
    if weight == 0 or not any(d.has_mask for d in detections):
        return
    placed = {}
    for index in order:
        patch = scale.crop_on_canvas(detections[index], (canvas.height, canvas.width))
        if patch is not None:
            placed[index] = patch
    if not placed:
        return
    top = min(t for _, t, _ in placed.values())
    left = min(x for x, _, _ in placed.values())
    bottom = min(canvas.height, max(t + p.shape[0] for _, t, p in placed.values()))
    right = min(canvas.width, max(x + p.shape[1] for x, _, p in placed.values()))
    owner = np.zeros((bottom - top, right - left), dtype=np.int32)
    regions = {}
    for index, (x, y, patch) in placed.items():  # largest first: smaller overwrite
        y, x = y - top, x - left
        area = owner[y : y + patch.shape[0], x : x + patch.shape[1]]
        np.copyto(area, index + 1, where=patch[: area.shape[0], : area.shape[1]])
        regions[index] = (x, y, area.shape[1], area.shape[0])
    for index, (x, y, width, height) in regions.items():
        mine = owner[y : y + height, x : x + width] == index + 1
        alpha = Image.fromarray(mine.view(np.uint8) * np.uint8(weight))  # mode "L"
        box = (left + x, top + y, left + x + width, top + y + height)
        canvas.paste(color_for(index), box, alpha)


def _clamped_corners(
    box_px: tuple[int, int, int, int], size_wh: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """Inclusive (x0, y0, x1, y1) inside the image, or None for an empty box."""
    x1, y1, x2, y2 = box_px
    width, height = size_wh
    x1, x2 = max(0, x1), min(width, x2)
    y1, y2 = max(0, y1), min(height, y2)
    if x2 <= x1 or y2 <= y1:
        logger.debug("Not drawing empty or off-image box %s", box_px)
        return None
    return x1, y1, x2 - 1, y2 - 1  # box_px x2/y2 are exclusive


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font (stable across machines for a pinned Pillow)."""
    return ImageFont.load_default(size=size)


def _draw_label(
    draw: ImageDraw.ImageDraw,
    box_px: tuple[int, int, int, int],
    text: str,
    index: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    size_wh: tuple[int, int],
) -> None:
    corners = _clamped_corners(box_px, size_wh)
    if corners is None:
        return
    left, top, right, bottom = font.getbbox(text)
    pad = max(2, round(font.size / 5)) if hasattr(font, "size") else 2
    label_w, label_h = right - left + 2 * pad, bottom - top + 2 * pad
    x1, y1 = corners[0], corners[1]
    x = max(0, min(x1, size_wh[0] - label_w))
    y = y1 - label_h if y1 - label_h >= 0 else y1  # inside the box at the top edge
    color = color_for(index)
    draw.rectangle((x, y, x + label_w - 1, y + label_h - 1), fill=color)
    draw.text((x + pad - left, y + pad - top), text, fill=_text_color(color), font=font)


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black on light colours, white on dark ones (ITU-R BT.601 luma)."""
    red, green, blue = background
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def to_jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """Encode ``image`` as JPEG: what the chat shows inline (~40x faster than PNG)."""
    buffer = io.BytesIO()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rgb.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def to_png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` as PNG bytes (fast zlib level: overlays are sent once)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def box_table_markdown(
    detections: Sequence[Detection],
    hidden: Collection[int] = (),
    captions: Sequence[str] = (),
) -> str:
    """A markdown table: #, label, x1, y1, x2, y2, mask area (px).

    Rows are numbered from 1 in list order (the overlay's colour order, the
    number drawn in its labels); the "#" cell starts with the colour's swatch
    (``swatch_for``). Rows whose number is in ``hidden`` are left out, the
    others keep their numbers. The area is "—" for a detection without a mask.
    Labels are single-lined and inert markdown (core.security.markdown:
    ``|`` becomes ``\\|``, no links).
    ``captions`` (one per detection: "describe each object") adds a caption
    column, escaped as the labels are. Empty list: "No objects found."
    """
    if not detections:
        return "No objects found."
    extra = (" caption |", "---|") if captions else ("", "")
    lines = [
        "| # | label | x1 | y1 | x2 | y2 | mask area (px) |" + extra[0],
        "|---:|---|---:|---:|---:|---:|---:|" + extra[1],
    ]
    for index, detection in enumerate(detections):
        if index + 1 in hidden:
            continue
        x1, y1, x2, y2 = detection.box_px
        area = str(detection.area) if detection.has_mask else "—"
        label = escape_markdown(display_label(detection, index))
        number = f"{swatch_for(index)} {index + 1}"
        row = f"| {number} | {label} | {x1} | {y1} | {x2} | {y2} | {area} |"
        if captions:
            text = captions[index] if index < len(captions) else ""
            row += f" {escape_markdown(' '.join(text.split())) or '—'} |"
        lines.append(row)
    return "\n".join(lines)
