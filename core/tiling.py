"""Look closely: detect/segment on overlapping tiles plus the whole photo.

PaliGemma sees a photo at 224 or 448 px, so in a 12 MP photo a far bottle is
a few pixels and is missed. With tiles, the model answers for the whole photo
and for each overlapping tile (``generate_looks``, on the model worker); each
answer is parsed and placed on the original photo like a region's, and
duplicates across tiles and the whole-photo pass are merged (``place_looks``,
beside the queue). The tile offsets follow supervision's ``InferenceSlicer``
and the merge is supervision's ``Detections.with_nmm``.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from PIL import Image

from core.errors import UserInputError
from core.pipeline import (
    MAX_DETECTIONS,
    Generation,
    VisionModel,
    build_result,
    generate,
    region_on_photo,
)
from core.types import (
    GROUNDED_TASKS,
    AnalysisResult,
    BoxPx,
    Decoding,
    Detection,
    Intent,
)

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


def tile_boxes(grid: tuple[int, int], area: BoxPx) -> list[BoxPx]:
    """The ``grid`` tiles of ``area`` (x1, y1, x2, y2 pixels), overlapping by
    OVERLAP, row by row: supervision's ``InferenceSlicer`` offsets."""
    x0, y0, x1, y1 = area
    width, height = x1 - x0, y1 - y0
    (slice_w, slice_h), (overlap_w, overlap_h) = slices_for(grid, (width, height))
    xs = _starts(width, slice_w, slice_w - overlap_w)
    ys = _starts(height, slice_h, slice_h - overlap_h)
    return [
        (x0 + x, y0 + y, x0 + min(x + slice_w, width), y0 + min(y + slice_h, height))
        for y in ys
        for x in xs
    ]


def _starts(side: int, size: int, stride: int) -> list[int]:
    if side <= size:
        return [0]
    if stride == size:
        return list(range(0, side, stride))
    starts = list(range(0, side - size, stride))
    if not starts or starts[-1] != side - size:
        starts.append(side - size)
    return starts


def generate_looks(
    image: Image.Image,
    intent: Intent,
    model: VisionModel,
    grid: tuple[int, int],
    *,
    sharp: Image.Image | None = None,
    source_wh: tuple[int, int] | None = None,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
    on_tile: TileProgress | None = None,
    cancel: threading.Event | None = None,
) -> list[Generation]:
    """The model's answers to ``intent``: the whole photo (or its region) and,
    for detect/segment with a ``grid`` other than (1, 1), each tile of it.

    The only part of a tiled request that runs the model (on the queue's
    worker); ``place_looks`` parses and places them beside it. ``image`` is
    what the model sees of the whole photo, ``sharp`` a sharper copy that
    regions and tiles are cut from (default ``image``), ``source_wh`` the
    original's size (default ``image.size``): each Generation's ``crop_px``
    is in original pixels. Tiles go to the model ``batch_workers(model)`` at
    a time (one thread each), so an engine that batches concurrent requests
    (core.engine.batcher) answers them in one run. ``on_tile(n, looks)`` is
    called as each look starts, the whole photo being look 1.
    """
    sharp = sharp or image
    size_wh = source_wh or image.size
    options = dict(decoding=decoding, max_new_tokens=max_new_tokens, cancel=cancel)
    if intent.task not in GROUNDED_TASKS or grid == (1, 1):
        seen = sharp if intent.region is not None else image
        return [
            generate(seen, intent, model, on_text=on_text, source_wh=size_wh, **options)
        ]
    area = region_on_photo(intent.region, size_wh) if intent.region else None
    boxes = tile_boxes(grid, area or (0, 0, *size_wh))
    started = _Counter(on_tile, len(boxes) + 1)
    started()
    whole = generate(sharp, intent, model, source_wh=size_wh, **options)
    plain = replace(intent, region=None)
    scale = sharp.width / size_wh[0], sharp.height / size_wh[1]

    def look(box: BoxPx) -> Generation:
        started()
        x1, y1, x2, y2 = box
        edges = (x1 * scale[0], y1 * scale[1], x2 * scale[0], y2 * scale[1])
        tile = sharp.crop(tuple(round(v) for v in edges))
        answer = generate(tile, plain, model, **options)
        return replace(answer, intent=intent, crop_px=box)

    width = min(batch_workers(model), len(boxes))
    if width == 1:
        return [whole, *map(look, boxes)]
    with ThreadPoolExecutor(width, thread_name_prefix="tile") as pool:
        return [whole, *pool.map(look, boxes)]


class _Counter:
    """Calls ``on_tile(n, total)`` with n = 1, 2, ... from any thread."""

    def __init__(self, on_tile: TileProgress | None, total: int) -> None:
        self.on_tile, self.total, self.done = on_tile, total, 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.done += 1
            number = self.done
        if self.on_tile is not None:
            self.on_tile(number, self.total)


def place_looks(
    size_wh: tuple[int, int],
    generations: list[Generation],
    model: VisionModel,
    *,
    max_detections: int = MAX_DETECTIONS,
) -> AnalysisResult:
    """Parse every look, decode its masks and place them on the ``size_wh``
    photo; several looks (whole + tiles) are merged (``merge_looks``).

    Runs beside the model queue, never on its worker: ``model`` is used only
    for ``decode_masks``.
    """
    results = [
        build_result(size_wh, generation, model, max_detections=max_detections)
        for generation in generations
    ]
    if len(results) == 1:
        return results[0]
    return merge_looks(results, max_detections)


def merge_looks(results: list[AnalysisResult], max_detections: int) -> AnalysisResult:
    """The whole-photo result (first) and its tiles' results, all on the same
    photo, merged: same-label objects overlapping MERGE_IOS become one
    (supervision's ``with_nmm``; the whole photo wins ties). At most
    ``max_detections`` objects; ``timings_s["tiles"]`` counts the tiles."""
    import supervision as sv

    whole, size_wh = results[0], results[0].image_size_wh
    labels: dict[str, int] = {}
    parts = [to_supervision(whole.detections, size_wh, WHOLE, labels)]
    parts += [to_supervision(r.detections, size_wh, TILE, labels) for r in results[1:]]
    merged = sv.Detections.merge(parts)
    if len(merged):
        merged = merged.with_nmm(
            threshold=MERGE_IOS,
            class_agnostic=False,
            overlap_metric=sv.OverlapMetric.IOS,
        )
    detections = from_supervision(merged, {v: k for k, v in labels.items()})
    logger.info(
        "%r on %dx%d with %d tiles: %d objects (whole photo alone: %d)",
        whole.intent.prompt,
        *size_wh,
        len(results) - 1,
        len(detections),
        len(whole.detections),
    )
    dropped = max(0, len(detections) - max_detections)
    return replace(
        whole,
        detections=tuple(detections[:max_detections]),
        timings_s={**whole.timings_s, "tiles": float(len(results) - 1)},
        detections_dropped=whole.detections_dropped + dropped,
    )


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
    """``generate_looks`` then ``place_looks`` in the calling thread: the whole
    photo and ``grid`` tiles, merged, in original pixels (benches and tests;
    the doors go through core.service, which places beside the queue)."""
    looks = generate_looks(
        image,
        intent,
        model,
        grid,
        decoding=decoding,
        max_new_tokens=max_new_tokens,
        on_tile=on_tile,
        cancel=cancel,
    )
    return place_looks(image.size, looks, model, max_detections=max_detections)


def batch_workers(model: VisionModel) -> int:
    """Tiles to run at once: the engine's batch size (``batch_max``), else 1."""
    size = getattr(model, "batch_max", 1)
    return size if isinstance(size, int) and size >= 1 else 1


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
