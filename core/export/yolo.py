"""YOLO segmentation labels (Ultralytics layout) for analysed images."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from core.export.coco import category_names
from core.export.items import (
    CLASSES_NAME,
    ExportItem,
    category_name,
    export_stems,
)
from core.export.masks import (
    mask_to_polygons,
)
from core.export.masks import polygon_to_mask as polygon_to_mask  # re-exported
from core.export.masks import rle_to_mask as rle_to_mask  # re-exported
from core.types import Detection

logger = logging.getLogger(__name__)


def yolo_class_names(items: Sequence[ExportItem]) -> list[str]:
    """Class names for classes.txt / data.yaml: index = YOLO class id."""
    return category_names(items)


def _yolo_pieces(det: Detection) -> list[np.ndarray]:
    """Polygons of one object in pixel units; its box as 4 corners without any.

    Mask outlines are pixel indices; boxes are pixel edges (``box_px``, or the
    mask's tight box when the mask has only slivers), the numbers a YOLO
    detection label would hold. ``[]`` when the object has no area at all.
    """
    box = det.box_px
    if det.has_mask:
        pieces = mask_to_polygons(det.mask)
        if pieces:
            return pieces
        tight = det.mask_xyxy
        if tight is not None:  # only slivers (e.g. a 1-pixel line): their box
            box = tight
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        logger.warning("YOLO export skips %r: empty box %s", det.label, box)
        return []
    return [np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])]


def to_yolo_seg(item: ExportItem, class_names: Sequence[str]) -> str:
    """YOLO segmentation labels: ``class x1 y1 x2 y2 ...`` per polygon piece.

    Coordinates are divided by the image width / height, clipped to [0, 1],
    6 decimals. A multi-part mask gives one line per part; a box-only object
    (or an empty / sliver-only mask) gives its box as 4 corners. Empty text
    for no objects, otherwise newline-terminated lines.
    """
    class_ids = {name: index for index, name in enumerate(class_names)}
    width, height = item.size_wh
    scale = np.array([width, height], dtype=np.float64)
    lines = []
    for det in item.detections:
        name = category_name(det.label)
        if name not in class_ids:
            raise ValueError(
                f"label {name!r} is not in class_names {list(class_names)!r}"
            )
        for points in _yolo_pieces(det):
            coords = np.clip(points / scale, 0.0, 1.0).ravel()
            lines.append(
                " ".join([str(class_ids[name]), *(f"{v:.6f}" for v in coords)])
            )
    return "".join(line + "\n" for line in lines)


# ZIP --------------------------------------------------------------------------


def yolo_files(items: Sequence[ExportItem]) -> dict[str, str]:
    """YOLO-seg files by relative path: ``classes.txt`` (line i names class i)
    and ``labels/<stem>.txt`` per image (empty when it has no objects)."""
    class_names = yolo_class_names(items)
    files = {CLASSES_NAME: "".join(name + "\n" for name in class_names)}
    for item, stem in zip(items, export_stems(items), strict=True):
        files[f"labels/{stem}.txt"] = to_yolo_seg(item, class_names)
    return files
