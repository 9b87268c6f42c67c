"""Look closely: detect/segment on overlapping tiles plus the whole photo.

PaliGemma sees a photo at 224 or 448 px, so in a 12 MP photo a far bottle is
a few pixels and is missed. With tiles, each overlapping tile is analysed at
the model's resolution (``core.pipeline.analyze``, unchanged), every box and
mask is moved back to original pixels, and duplicates across tiles and the
whole-photo pass are merged. Slicing, moving back and merging are
supervision's (``InferenceSlicer``, ``Detections.with_nmm``), not ours.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

import numpy as np
from PIL import Image

from core.errors import UserInputError
from core.pipeline import (
    MAX_DETECTIONS,
    VisionModel,
    analyze,
    region_on_photo,
    shift_detections,
)
from core.types import GROUNDED_TASKS, AnalysisResult, Decoding, Detection, Intent

logger = logging.getLogger(__name__)

AUTO_TILE_PX = 1344  # auto: tiles about this long (6x a 224 input, 3x a 448 one)
MAX_TILES_PER_SIDE = 4
OVERLAP = 0.2  # of a tile's side, so an object cut by one tile is whole in the next
MERGE_IOS = 0.5  # merge two same-label detections overlapping >= half the smaller
WHOLE, TILE = 1.0, 0.9  # merge order: the whole-photo pass wins ties
_GRID = re.compile(r"^\s*+(\d++)\s*+[x\u00d7]\s*+(\d++)\s*+$", re.IGNORECASE)

TileProgress = Callable[[int, int], None]  # (tile number from 1, tiles in all)
TileSpec = str | tuple[int, int]  # "off" | "auto" | (columns, rows)


def parse_tiles(spec: str | None) -> TileSpec:
    """``auto`` | ``off`` | ``NxM`` (columns x rows, 1..4 each); 400 otherwise."""
    text = (spec or "off").strip().lower()
    if text in ("auto", "off"):
        return text
    match = _GRID.match(text)
    if match:
        columns, rows = int(match.group(1)), int(match.group(2))
        if 1 <= columns <= MAX_TILES_PER_SIDE and 1 <= rows <= MAX_TILES_PER_SIDE:
            return columns, rows
    raise UserInputError(
        f"tiles must be 'auto', 'off' or NxM with N and M in "
        f"1..{MAX_TILES_PER_SIDE} (e.g. '3x3'), got {spec!r}."
    )


def tile_grid(spec: TileSpec, size_wh: tuple[int, int]) -> tuple[int, int]:
    """(columns, rows) for a photo; (1, 1) means no tiles."""
    if spec == "off":
        return 1, 1
    if spec == "auto":
        width, height = size_wh
        return (
            min(MAX_TILES_PER_SIDE, max(1, math.ceil(width / AUTO_TILE_PX))),
            min(MAX_TILES_PER_SIDE, max(1, math.ceil(height / AUTO_TILE_PX))),
        )
    return spec  # type: ignore[return-value]


def tile_looks(grid: tuple[int, int], intent: Intent) -> int:
    """Model runs ``analyze_tiled`` makes on one photo with ``grid``: 1, or
    the whole photo plus every tile (detect/segment only; see there)."""
    columns, rows = grid
    if intent.task not in GROUNDED_TASKS or columns * rows == 1:
        return 1
    return columns * rows + 1


def slices_for(
    grid: tuple[int, int], size_wh: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(slice_wh, overlap_wh) so that ``grid`` tiles with OVERLAP cover the photo.

    supervision steps by ``slice - overlap``; n tiles of side s with overlap o
    cover n * s - (n - 1) * o pixels, so s = ceil((side + (n - 1) * o) / n).
    """
    sides = []
    for count, side in zip(grid, size_wh, strict=True):
        overlap = round(OVERLAP * side / count) if count > 1 else 0
        sides.append((math.ceil((side + (count - 1) * overlap) / count), overlap))
    (slice_w, overlap_w), (slice_h, overlap_h) = sides
    return (slice_w, slice_h), (overlap_w, overlap_h)


def analyze_tiled(
    image: Image.Image,
    intent: Intent,
    model: VisionModel,
    grid: tuple[int, int],
    *,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_tile: TileProgress | None = None,
    max_detections: int = MAX_DETECTIONS,
    cancel: threading.Event | None = None,
) -> AnalysisResult:
    """``analyze`` on the whole photo and on ``grid`` tiles, merged.

    At most ``max_detections`` objects per pass, and after the merge.
    Tiles go to the model ``batch_workers(model)`` at a time (supervision's
    batch contract, one thread per tile), so an engine that batches
    concurrent requests (core.engine.batcher) answers them in one model run;
    the vision-feature cache applies per tile image. ``on_tile`` is called
    (from a worker thread) as each look starts: (n, tiles + 1), the whole
    photo being look 1. ``cancel``: see ``core.pipeline.generate``.

    Only detect/segment are tiled (a caption of a tile answers another
    question); ``grid`` (1, 1) or another task is one plain ``analyze``.
    Boxes and masks are in original pixels; ``raw_text`` is the whole-photo
    answer, and ``timings_s["tiles"]`` counts the tiles that ran.
    """
    import supervision as sv

    look = partial(  # one look: the whole photo, a tile, or all of a 1x1 grid
        analyze,
        request=intent,
        model=model,
        decoding=decoding,
        max_new_tokens=max_new_tokens,
        max_detections=max_detections,
        cancel=cancel,
    )
    if intent.task not in GROUNDED_TASKS or grid == (1, 1):
        return look(image)
    if intent.region is not None:  # tiles of the region, not of the whole photo
        return _tiled_region(
            image,
            intent,
            model,
            grid,
            decoding=decoding,
            max_new_tokens=max_new_tokens,
            on_tile=on_tile,
            max_detections=max_detections,
            cancel=cancel,
        )
    columns, rows = grid
    total = columns * rows + 1
    labels: dict[str, int] = {}
    lock = threading.Lock()  # tiles run on several threads (batch_workers)
    done = 0

    def run(part: Image.Image) -> AnalysisResult:
        nonlocal done
        with lock:
            done += 1
            number = done
        if on_tile is not None:
            on_tile(number, total)
        return look(part)

    def tile_detections(tile: np.ndarray):
        found = run(Image.fromarray(tile)).detections
        with lock:  # class ids are handed out from one shared table
            return to_supervision(found, tile.shape[1::-1], TILE, labels)

    def tile_batch(tiles: list[np.ndarray]) -> list:
        # One thread per tile: the engine's micro-batcher answers them together.
        with ThreadPoolExecutor(len(tiles), thread_name_prefix="tile") as pool:
            return list(pool.map(tile_detections, tiles))

    whole = run(image)
    slice_wh, overlap_wh = slices_for(grid, image.size)
    width = min(batch_workers(model), columns * rows)
    slicer = sv.InferenceSlicer(
        callback=tile_batch if width > 1 else tile_detections,
        slice_wh=slice_wh,
        overlap_wh=overlap_wh,
        overlap_filter=sv.OverlapFilter.NONE,  # merged once below, with the whole
        batch_size=width,  # tiles in source order, ``width`` at a time
    )
    tiled = slicer(np.asarray(image))
    merged = sv.Detections.merge(
        [to_supervision(whole.detections, image.size, WHOLE, labels), tiled]
    )
    if len(merged):
        merged = merged.with_nmm(
            threshold=MERGE_IOS,
            class_agnostic=False,
            overlap_metric=sv.OverlapMetric.IOS,
        )
    detections = from_supervision(merged, {v: k for k, v in labels.items()})
    timings = {**whole.timings_s, "tiles": float(total - 1)}
    logger.info(
        "%r on %dx%d in %dx%d tiles: %d objects (whole photo alone: %d)",
        intent.prompt,
        *image.size,
        columns,
        rows,
        len(detections),
        len(whole.detections),
    )
    dropped = max(0, len(detections) - max_detections)
    return replace(
        whole,
        detections=tuple(detections[:max_detections]),
        timings_s=timings,
        detections_dropped=whole.detections_dropped + dropped,
    )


def batch_workers(model: VisionModel) -> int:
    """Tiles to run at once: the engine's batch size (``batch_max``), else 1."""
    size = getattr(model, "batch_max", 1)
    return size if isinstance(size, int) and size >= 1 else 1


def _tiled_region(
    image: Image.Image,
    intent: Intent,
    model: VisionModel,
    grid: tuple[int, int],
    **options,
) -> AnalysisResult:
    crop = region_on_photo(intent.region, image.size)
    inner = analyze_tiled(
        image.crop(crop),
        replace(intent, region=None),
        model,
        grid,
        **options,
    )
    detections = shift_detections(list(inner.detections), crop[:2], image.size)
    return replace(
        inner, intent=intent, detections=tuple(detections), image_size_wh=image.size
    )


def to_supervision(
    detections: tuple[Detection, ...] | list[Detection],
    size_wh: tuple[int, int],
    confidence: float,
    labels: dict[str, int],
):
    """Our detections -> ``sv.Detections`` (class ids from ``labels``, grown).

    Masks become supervision's ``CompactMask`` straight from our crops (RLE of
    each crop, never an (N, H, W) array: 100 objects on a 12 MP photo would
    be 1.2 GB dense). supervision needs a mask for all or none: when only some
    objects have one (a segment answer may leave a mask out), the others get
    their box as mask, flagged in ``data["has_mask"]`` and dropped afterwards.
    """
    import supervision as sv

    if not detections:
        return sv.Detections.empty()
    ids = [labels.setdefault(d.label or "", len(labels)) for d in detections]
    has_mask = np.array([d.has_mask for d in detections])
    masks = compact_masks(detections, size_wh) if has_mask.any() else None
    return sv.Detections(
        xyxy=np.array([d.box_px for d in detections], dtype=np.float64),
        mask=masks,
        confidence=np.full(len(detections), confidence),
        class_id=np.array(ids, dtype=int),
        data={"has_mask": has_mask},
    )


def compact_masks(detections, size_wh: tuple[int, int]):
    """supervision's ``CompactMask`` of our mask crops (a box without a mask:
    the box filled; an empty box: one False pixel)."""
    from supervision.detection.compact_mask import CompactMask

    width, height = size_wh
    runs, shapes, offsets = [], [], []
    for det in detections:
        if det.has_mask:
            crop, origin = det.mask_crop, det.mask_origin_xy
        else:
            x1, y1, x2, y2 = det.box_px
            crop, origin = np.ones((y2 - y1, x2 - x1), dtype=bool), (x1, y1)
        if crop.size == 0:
            x1, y1 = det.box_px[:2]
            crop = np.zeros((1, 1), dtype=bool)
            origin = (min(x1, width - 1), min(y1, height - 1))
        runs.append(column_runs(crop))
        shapes.append(crop.shape)
        offsets.append(origin)
    return CompactMask(
        runs,
        np.array(shapes, dtype=np.int32).reshape(-1, 2),
        np.array(offsets, dtype=np.int32).reshape(-1, 2),
        (height, width),
    )


def column_runs(crop: np.ndarray) -> np.ndarray:
    """COCO-order (column-major) run lengths of a bool crop, False run first."""
    flat = crop.ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size])))
    if flat[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.int32)


def from_supervision(merged, names: dict[int, str]) -> list[Detection]:
    """Merged ``sv.Detections`` (masks: ``CompactMask``, see ``to_supervision``)
    -> our detections, masks kept as crops."""
    found = []
    has_mask = merged.data.get("has_mask")
    masks = merged.mask
    for index in range(len(merged)):
        x1, y1, x2, y2 = (round(float(v)) for v in merged.xyxy[index])
        label = names.get(int(merged.class_id[index])) or None
        if masks is None or not has_mask[index]:
            found.append(Detection(label=label, box_px=(x1, y1, x2, y2)))
            continue
        height, width = masks.image_shape
        ox, oy = (int(v) for v in masks.offsets[index])
        found.append(
            Detection(
                label,
                (x1, y1, x2, y2),
                mask_crop=np.asarray(masks.crop(index), dtype=bool),
                mask_origin_xy=(ox, oy),
                image_wh=(width, height),
            )
        )
    return found
