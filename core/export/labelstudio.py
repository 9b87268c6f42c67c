"""Label Studio pre-annotations: one task per image, its objects as a prediction.

Import the JSON into a Label Studio project whose labeling config
(``label_studio_config``) has an ``Image`` named ``image`` (``value="$image"``),
``RectangleLabels`` named ``label`` and ``PolygonLabels`` named ``polygon``;
the auto-labels then show as predictions to review. ``data.image`` is the
photo's file name: point it at where Label Studio serves the photos.

- A masked object is one ``polygonlabels`` region per outline (all parts,
  largest first, holes filled, as in COCO polygons), through pixel centres.
- A box-only object (or a mask of slivers only) is a ``rectanglelabels``
  region: its pixel box (a sliver mask: the mask's tight box).
- Coordinates are percent of the *original* image (``original_width`` /
  ``original_height``), clipped to [0, 100].
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from core.export.coco import category_names
from core.export.items import ExportItem, category_name
from core.export.masks import mask_to_polygons
from core.types import Detection

logger = logging.getLogger(__name__)

IMAGE_NAME = "image"  # the Image tag (to_name) and its data key
BOX_CONTROL = "label"  # RectangleLabels
POLYGON_CONTROL = "polygon"  # PolygonLabels
MODEL_VERSION = "paligemma-chat"


def label_studio_config(items: Sequence[ExportItem]) -> str:
    """A labeling config (XML) that takes these tasks, one label per category."""
    labels = "".join(
        f"<Label value={quoteattr(name)}/>" for name in category_names(items)
    )
    return (
        f'<View><Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>'
        f'<RectangleLabels name="{BOX_CONTROL}" toName="{IMAGE_NAME}">{labels}'
        f'</RectangleLabels><PolygonLabels name="{POLYGON_CONTROL}" '
        f'toName="{IMAGE_NAME}">{labels}</PolygonLabels></View>'
    )


def to_label_studio(items: Sequence[ExportItem]) -> list[dict[str, Any]]:
    """Label Studio tasks (``[{"data", "predictions"}]``) for ``items``."""
    tasks = []
    for item in items:
        result: list[dict[str, Any]] = []
        for number, det in enumerate(item.detections, start=1):
            result.extend(_regions(det, number, item.size_wh))
        prediction = {"model_version": MODEL_VERSION, "result": result}
        tasks.append(
            {"data": {IMAGE_NAME: item.file_name}, "predictions": [prediction]}
        )
    return tasks


def label_studio_json(items: Sequence[ExportItem]) -> str:
    """``to_label_studio(items)`` as the JSON text Label Studio imports."""
    return json.dumps(to_label_studio(items), ensure_ascii=False)


def _regions(
    det: Detection, number: int, size_wh: tuple[int, int]
) -> list[dict[str, Any]]:
    """The regions of object ``number`` (1-based): polygons, or its box."""
    name = category_name(det.label)
    box = det.box_px
    if det.has_mask:
        outlines = mask_to_polygons(det.mask)
        if outlines:
            return [
                _region(f"{number}-{part}", "polygonlabels", name, size_wh, points)
                for part, points in enumerate(outlines, start=1)
            ]
        tight = det.mask_xyxy
        if tight is not None:  # only slivers (e.g. a 1-pixel line): their box
            box = tight
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        logger.warning("Label Studio export skips %r: empty box %s", det.label, box)
        return []
    return [_region(str(number), "rectanglelabels", name, size_wh, (x1, y1, x2, y2))]


def _region(
    region_id: str,
    kind: str,
    name: str,
    size_wh: tuple[int, int],
    shape: Any,
) -> dict[str, Any]:
    """One result entry; ``shape`` is ``(x1, y1, x2, y2)`` pixel edges for a
    rectangle, ``(N, 2)`` pixel indices for a polygon."""
    width, height = size_wh
    if kind == "rectanglelabels":
        x1, y1, x2, y2 = shape
        value = {
            "x": _percent(x1, width),
            "y": _percent(y1, height),
            "width": _percent(x2 - x1, width),
            "height": _percent(y2 - y1, height),
            "rotation": 0,
        }
        control = BOX_CONTROL
    else:
        centres = np.asarray(shape, dtype=np.float64) + 0.5  # pixel centres
        value = {
            "points": [[_percent(x, width), _percent(y, height)] for x, y in centres],
            "closed": True,
        }
        control = POLYGON_CONTROL
    return {
        "id": region_id,
        "type": kind,
        "from_name": control,
        "to_name": IMAGE_NAME,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {**value, kind: [name]},
    }


def _percent(pixels: float, total: int) -> float:
    return round(min(max(100.0 * float(pixels) / total, 0.0), 100.0), 6)
