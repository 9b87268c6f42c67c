"""One request over many images: per-image results and errors, then exports.

UI-free and synchronous: the chat ("segment the cars in all images"), the REST
API (many images in one request) and the command line (``python -m cli``)
call it off their event loops. The request is resolved to one Intent before
the first image, so every image gets the same model prompt; a failure of one
image (unreadable file, not an image, too many pixels, a model error) is
recorded in its BatchItem and the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from core.errors import AppError
from core.export import ExportItem
from core.export.masks import mask_to_rle
from core.images import load_image
from core.pipeline import MAX_DETECTIONS, VisionModel, to_intent
from core.render import render_overlay, to_png_bytes
from core.tiling import TileSpec, analyze_tiled, tile_grid
from core.types import AnalysisResult, Decoding, Detection, Intent

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


def iter_batch(
    sources: Sequence[Source],
    request: str | Intent,
    model: VisionModel,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_progress: ProgressCallback | None = None,
    keep_images: bool = True,
    tiles: TileSpec = "off",
    max_detections: int = MAX_DETECTIONS,
) -> Iterator[BatchItem]:
    """Run ``request`` on each source in order, yielding one BatchItem each.

    ``sources`` are ``(name, data)`` with ``data`` the file bytes or a path to
    read. ``max_pixels`` / ``max_bytes`` are load_image's limits;
    ``decoding``, ``max_new_tokens`` and ``max_detections`` are passed to
    ``analyze``.
    ``on_progress(done, total, name)`` is called after each item, before it
    is yielded. ``keep_images`` False drops the decoded image from the items
    (saves memory when no overlay is wanted). ``tiles`` ("off", "auto" or
    (columns, rows)) also runs detect/segment on tiles (core.tiling).

    Raises UserInputError on the first step (before any image is read) when
    ``request`` does not ask the model to run (a generator: not at the call);
    per-image failures never raise.
    """
    intent = to_intent(request)  # one prompt for all images
    total = len(sources)
    for done, (name, data) in enumerate(sources, start=1):
        item = _analyze_one(
            name,
            data,
            intent,
            model,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            tiles=tiles,
            max_detections=max_detections,
        )
        if not keep_images and item.image is not None:
            item = replace(item, image=None)
        if on_progress is not None:
            on_progress(done, total, name)
        yield item


def analyze_batch(
    sources: Sequence[Source],
    request: str | Intent,
    model: VisionModel,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_progress: ProgressCallback | None = None,
    keep_images: bool = True,
    tiles: TileSpec = "off",
    max_detections: int = MAX_DETECTIONS,
) -> list[BatchItem]:
    """``iter_batch`` collected into a list, in the order of ``sources``."""
    return list(
        iter_batch(
            sources,
            request,
            model,
            max_pixels=max_pixels,
            max_bytes=max_bytes,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            on_progress=on_progress,
            keep_images=keep_images,
            tiles=tiles,
            max_detections=max_detections,
        )
    )


def _analyze_one(
    name: str,
    data: bytes | str | Path,
    intent: Intent,
    model: VisionModel,
    *,
    max_pixels: int,
    max_bytes: int | None,
    decoding: Decoding | None,
    max_new_tokens: int | None,
    tiles: TileSpec = "off",
    max_detections: int = MAX_DETECTIONS,
) -> BatchItem:
    start = time.perf_counter()
    image: Image.Image | None = None

    def failed(message: str, code: str) -> BatchItem:
        size = image.size if image is not None else None
        seconds = time.perf_counter() - start
        return BatchItem(name, size, None, message, code, seconds, image)

    try:
        raw = data if isinstance(data, bytes | bytearray) else Path(data).read_bytes()
    except OSError as exc:
        logger.info("batch: cannot read %s: %s", name, exc)
        reason = exc.strerror or type(exc).__name__
        return failed(f"The file could not be read ({reason}).", UNREADABLE_FILE)
    try:
        image = load_image(bytes(raw), max_pixels=max_pixels, max_bytes=max_bytes)
        result = analyze_tiled(
            image,
            intent,
            model,
            tile_grid(tiles, image.size),
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            max_detections=max_detections,
        )
    except AppError as exc:
        logger.info("batch: %s failed: %s", name, exc.message)
        return failed(exc.message, exc.code)
    except Exception as exc:  # one bad image must not lose the rest of the batch
        logger.exception("batch: unexpected error on %s", name)
        return failed(
            f"Unexpected error while analysing this image ({type(exc).__name__}).",
            INTERNAL_ERROR,
        )
    seconds = time.perf_counter() - start
    logger.debug("batch: %s done in %.2f s", name, seconds)
    return BatchItem(name, image.size, result, None, None, seconds, image)


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
        "truncated": result.truncated if result else None,
        "detections": (
            [detection_to_dict(d) for d in result.detections] if result else []
        ),
        "seconds": round(item.seconds, 3),
    }
