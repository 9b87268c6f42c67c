"""One request over many images: the per-image outcome (BatchItem) and its
exports. The run itself is core.service.many (the REST API and the command
line): every image gets the same model prompt, and a failure of one image
(unreadable file, not an image, too many pixels, a model error) is recorded
in its BatchItem while the batch goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from core.export import ExportItem
from core.export.masks import mask_to_rle
from core.render import render_overlay, to_png_bytes
from core.types import AnalysisResult, Detection

logger = logging.getLogger(__name__)

Source = tuple[str, bytes | str | Path]  # (display name, file bytes or a path)
ProgressCallback = Callable[[int, int, str], None]  # (done, total, name)

INTERNAL_ERROR = "internal_error"
UNREADABLE_FILE = "unreadable_file"


@dataclass(frozen=True, eq=False)
class BatchItem:
    """The outcome for one image of a batch: a result or an error, never both.

    ``size_wh`` is the original image's ``(width, height)``, None when the
    image could not be loaded. ``error`` is a chat-safe message and
    ``error_code`` the AppError code ("bad_image", ...), or "unreadable_file"
    / "internal_error". ``image`` is the loaded RGB image (kept for overlays;
    None on a load failure). ``seconds`` is the wall time spent on this item.
    """

    name: str
    size_wh: tuple[int, int] | None
    result: AnalysisResult | None = None
    error: str | None = None
    error_code: str | None = None
    seconds: float = 0.0
    image: Image.Image | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.result is not None


# Exports ----------------------------------------------------------------------


def batch_item_to_export_item(
    item: BatchItem, *, overlay: bool = True, opacity: float = 0.5
) -> ExportItem:
    """An ExportItem of a successful item; ``overlay`` renders its PNG.

    Raises ValueError for a failed item, or when an overlay is asked for but
    the item kept no image (``keep_images=False``).
    """
    if item.result is None or item.size_wh is None:
        raise ValueError(f"item {item.name!r} failed ({item.error}); nothing to export")
    overlay_png = None
    if overlay:
        if item.image is None:
            raise ValueError(
                f"item {item.name!r} has no image to draw on: run the batch with "
                "keep_images=True to export overlays"
            )
        drawn = render_overlay(item.image, item.result.detections, opacity=opacity)
        overlay_png = to_png_bytes(drawn)
    return ExportItem(
        file_name=item.name,
        size_wh=item.size_wh,
        detections=item.result.detections,
        overlay_png=overlay_png,
        captions=item.result.object_captions,
    )


def batch_to_export_items(
    items: Sequence[BatchItem], *, overlays: bool, opacity: float = 0.5
) -> list[ExportItem]:
    """ExportItems of the successful items, in batch order; failures skipped."""
    return [
        batch_item_to_export_item(item, overlay=overlays, opacity=opacity)
        for item in items
        if item.ok
    ]


def detection_to_dict(detection: Detection, *, with_rle: bool = True) -> dict:
    """JSON-ready detection: label, box_px [x1, y1, x2, y2], area, mask_rle.

    ``mask_rle`` is COCO compressed RLE ``{"size": [H, W], "counts": str}``
    (``core.export.masks.rle_to_mask`` restores it), None for box-only objects
    and when ``with_rle`` is False.
    """
    has_rle = with_rle and detection.has_mask
    return {
        "label": detection.label,
        "box_px": [int(v) for v in detection.box_px],
        "area": detection.area,
        "mask_rle": mask_to_rle(detection.mask) if has_rle else None,
    }


def batch_item_to_dict(item: BatchItem) -> dict:
    """JSON-ready summary of one item; result fields are None on failure."""
    result = item.result
    width, height = item.size_wh or (None, None)
    detections = [detection_to_dict(d) for d in result.detections] if result else []
    for detection, caption in zip(
        detections, result.object_captions if result else (), strict=False
    ):
        detection["caption"] = caption  # "describe each object"
    return {
        "file_name": item.name,
        "width": width,
        "height": height,
        "ok": item.ok,
        "error": item.error,
        "error_code": item.error_code,
        "prompt": result.intent.prompt if result else None,
        "task": result.intent.task if result else None,
        "raw_text": result.raw_text if result else None,
        "answer": result.answer if result else None,
        "caption": result.caption if result else None,  # "detect everything"
        "truncated": result.truncated if result else None,
        "detections": detections,
        "seconds": round(item.seconds, 3),
    }
