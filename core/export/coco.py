"""COCO instance annotations (RLE or polygons) for analysed images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from core.export.items import ExportItem, category_name
from core.export.masks import (
    mask_to_polygons,
    mask_to_rle,
)
from core.export.masks import polygon_to_mask as polygon_to_mask  # re-exported
from core.export.masks import rle_to_mask as rle_to_mask  # re-exported
from core.types import Detection

logger = logging.getLogger(__name__)


def _box_xywh(box_px: Sequence[int]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box_px)
    return [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]


def _coco_polygons(mask: np.ndarray, bbox: list[float]) -> list[list[float]]:
    """COCO polygons for a non-empty mask; its tight box when only slivers."""
    polygons = [
        (points.astype(np.float64) + 0.5).ravel().round(2).tolist()  # pixel centres
        for points in mask_to_polygons(mask)
    ]
    if polygons:
        return polygons
    x, y, w, h = bbox  # e.g. a 1-pixel-wide line: its box is exact
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def category_names(items: Sequence[ExportItem]) -> list[str]:
    """Category names in order of first appearance over all items."""
    names: dict[str, None] = {}
    for item in items:
        for det in item.detections:
            names.setdefault(category_name(det.label), None)
    return list(names)


def to_coco(items: Sequence[ExportItem], *, polygons: bool = False) -> dict:
    """COCO instance annotations for ``items`` (see the module docstring).

    ``polygons`` False writes masks as RLE (exact, holes kept); True writes
    outer polygons (lossy at the boundary, holes filled).
    """
    names = category_names(items)
    category_ids = {name: index + 1 for index, name in enumerate(names)}
    images, annotations = [], []
    for image_id, item in enumerate(items, start=1):
        width, height = item.size_wh
        image = {"id": image_id, "file_name": item.file_name}
        images.append({**image, "width": width, "height": height})
        for index, det in enumerate(item.detections):
            annotation = _annotation(
                det, len(annotations) + 1, image_id, category_ids, polygons
            )
            if index < len(item.captions):  # "describe each object"
                annotation["attributes"] = {"caption": item.captions[index]}
            annotations.append(annotation)
    return {
        "info": {
            "description": "paligemma-chat export",
            "version": "1.0",
            "year": datetime.now(UTC).year,
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": category_ids[name], "name": name, "supercategory": "object"}
            for name in names
        ],
    }


def _annotation(
    det: Detection,
    annotation_id: int,
    image_id: int,
    category_ids: dict[str, int],
    polygons: bool,
) -> dict:
    segmentation: dict | list = []
    area = det.area
    tight = det.mask_xyxy
    bbox = _box_xywh(tight if tight is not None else det.box_px)
    if det.has_mask:
        mask = det.mask  # full size only while this file is written
        if polygons:
            segmentation = _coco_polygons(mask, bbox) if area else []
        else:
            segmentation = mask_to_rle(mask)
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": category_ids[category_name(det.label)],
        "bbox": bbox,
        "area": float(area),
        "iscrowd": 0,
        "segmentation": segmentation,
    }


# YOLO -------------------------------------------------------------------------
