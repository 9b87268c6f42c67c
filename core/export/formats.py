"""Per-object results in standard formats: COCO (RLE or polygons), YOLO-seg, a ZIP.

Conventions (decided here, relied on by the chat and the API):
- COCO ids start at 1: images in item order, annotations in detection order,
  categories by first appearance of their label (None or blank -> "object").
- Masks are written as compressed RLE (``counts`` a str) with ``iscrowd`` 0:
  ``iscrowd`` 1 would make COCOeval *ignore* the object, and pycocotools
  (``annToRLE``, ``loadRes``) decodes RLE whatever ``iscrowd`` says.
- ``bbox`` is ``[x, y, w, h]`` floats: the mask's tight box (pycocotools
  ``toBbox``) when the mask has pixels, else the detection's ``box_px``.
  ``area`` is the mask's pixel count, or the box area for box-only objects,
  whose ``segmentation`` is ``[]``.
- COCO polygons are continuous coordinates through pixel centres (+0.5, as
  detectron2 does); YOLO polygons are pixel indices / size (as Ultralytics
  rasterises them). Both fill holes: use RLE to keep them.
"""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from core.export.masks import (
    mask_to_png,
    mask_to_polygons,
    mask_to_rle,
)
from core.export.masks import polygon_to_mask as polygon_to_mask  # re-exported
from core.export.masks import rle_to_mask as rle_to_mask  # re-exported
from core.types import Detection

logger = logging.getLogger(__name__)

COCO_JSON_NAME = "annotations.coco.json"
CLASSES_NAME = "classes.txt"
# Top-level names in an export ZIP (errors.json is added by the API): no image
# folder may take one of them.
ZIP_TOP_LEVEL = frozenset({"labels", COCO_JSON_NAME, CLASSES_NAME, "errors.json"})
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # member timestamps: fixed, not the clock


# Names ------------------------------------------------------------------------

_UNSAFE = re.compile(r'[/\\<>:"|?*]')  # path separators and Windows-reserved


def category_name(label: str | None) -> str:
    """The category / class name of a label: whitespace and control characters
    collapsed to single spaces, trimmed; None or blank -> "object"."""
    text = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" else ch for ch in label or ""
    )
    return " ".join(text.split()) or "object"


def safe_name(text: str, fallback: str, max_chars: int = 64) -> str:
    """A file-name-safe version of ``text``: unicode kept; path separators,
    Windows-reserved and control characters and whitespace become "_"."""
    chars = (
        "_" if unicodedata.category(ch)[0] in "CZ" or _UNSAFE.match(ch) else ch
        for ch in text
    )
    name = re.sub(r"_+", "_", "".join(chars)).strip("._ ")[:max_chars]
    return name.strip("._ ") or fallback


def unique_stems(
    file_names: Sequence[str], reserved: Set[str] = frozenset()
) -> list[str]:
    """Safe, case-insensitively unique stems of ``file_names`` ("a.png",
    "a.png" -> "a", "a_2"); names in ``reserved`` are never used."""
    taken = {name.casefold() for name in reserved}
    stems = []
    for file_name in file_names:
        base = re.split(r"[/\\]", file_name or "")[-1]
        base = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
        stem = candidate = safe_name(base, "image")
        counter = 1
        while candidate.casefold() in taken:
            counter += 1
            candidate = f"{stem}_{counter}"
        taken.add(candidate.casefold())
        stems.append(candidate)
    return stems


@dataclass(frozen=True)
class ExportItem:
    """One image and its detections, ready to export.

    ``size_wh`` is the original image's ``(width, height)``; every masked
    detection must belong to an image of that size (``Detection`` has checked
    its own mask). ``overlay_png`` is optional PNG bytes.
    """

    file_name: str
    size_wh: tuple[int, int]
    detections: tuple[Detection, ...] = ()
    overlay_png: bytes | None = None

    def __post_init__(self) -> None:
        width, height = (int(v) for v in self.size_wh)
        if width <= 0 or height <= 0:
            raise ValueError(f"size_wh must be positive, got {self.size_wh}")
        object.__setattr__(self, "size_wh", (width, height))
        object.__setattr__(self, "detections", tuple(self.detections))
        for index, det in enumerate(self.detections):
            if det.has_mask and det.image_wh != (width, height):
                got_w, got_h = det.image_wh or (0, 0)
                raise ValueError(
                    f"detection {index}: mask must be (H, W) = ({height}, {width}) "
                    f"for size_wh {(width, height)}, got ({got_h}, {got_w})"
                )


# COCO -------------------------------------------------------------------------


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
        for det in item.detections:
            annotations.append(
                _annotation(det, len(annotations) + 1, image_id, category_ids, polygons)
            )
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


def yolo_class_names(items: Sequence[ExportItem]) -> list[str]:
    """Class names for classes.txt / data.yaml: index = YOLO class id."""
    return category_names(items)


def _yolo_pieces(det: Detection, size_wh: tuple[int, int]) -> list[np.ndarray]:
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
        for points in _yolo_pieces(det, item.size_wh):
            coords = np.clip(points / scale, 0.0, 1.0).ravel()
            lines.append(
                " ".join([str(class_ids[name]), *(f"{v:.6f}" for v in coords)])
            )
    return "".join(line + "\n" for line in lines)


# ZIP --------------------------------------------------------------------------


def mask_file_names(item: ExportItem, stem: str) -> list[str | None]:
    """ZIP member name of each detection's mask PNG; None for box-only ones.

    ``<stem>/<index:02d>_<safe label>.png`` with index starting at 1, the
    position in ``item.detections`` (so equal labels never clash).
    """
    return [
        None
        if not det.has_mask
        else f"{stem}/{index:02d}_{safe_name(category_name(det.label), 'object')}.png"
        for index, det in enumerate(item.detections, start=1)
    ]


def export_stems(items: Sequence[ExportItem]) -> list[str]:
    """Per-image folder/label names used by every export (path-safe, unique)."""
    return unique_stems([item.file_name for item in items], reserved=ZIP_TOP_LEVEL)


def yolo_files(items: Sequence[ExportItem]) -> dict[str, str]:
    """YOLO-seg files by relative path: ``classes.txt`` (line i names class i)
    and ``labels/<stem>.txt`` per image (empty when it has no objects)."""
    class_names = yolo_class_names(items)
    files = {CLASSES_NAME: "".join(name + "\n" for name in class_names)}
    for item, stem in zip(items, export_stems(items), strict=True):
        files[f"labels/{stem}.txt"] = to_yolo_seg(item, class_names)
    return files


def masks_zip(items: Sequence[ExportItem], *, polygons: bool = False) -> bytes:
    """A ZIP of everything: masks, COCO JSON, YOLO labels, classes, overlays.

    Members: ``annotations.coco.json`` (``to_coco(items, polygons=...)``),
    ``classes.txt``, ``labels/<stem>.txt`` per image (empty when it has no
    objects), ``<stem>/<NN>_<label>.png`` per masked object (original size,
    mode "L", 0/255) and ``<stem>/overlay.png`` when the item has one. Stems
    come from the file names, made path-safe and unique.
    """
    stems = export_stems(items)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def write(name: str, data: bytes | str) -> None:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            # PNGs are deflated already: storing them saves a second pass.
            stored = name.endswith(".png")
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)

        coco = to_coco(items, polygons=polygons)
        write(COCO_JSON_NAME, json.dumps(coco, ensure_ascii=False, indent=1))
        yolo = yolo_files(items)
        write(CLASSES_NAME, yolo[CLASSES_NAME])
        for item, stem in zip(items, stems, strict=True):
            write(f"labels/{stem}.txt", yolo[f"labels/{stem}.txt"])
            for det, name in zip(
                item.detections, mask_file_names(item, stem), strict=True
            ):
                if name is not None and det.has_mask:
                    write(name, mask_to_png(det.mask))  # full size, one at a time
            if item.overlay_png is not None:
                write(f"{stem}/overlay.png", item.overlay_png)
    logger.debug(
        "masks_zip: %d images, %d objects, %d bytes",
        len(items),
        len(coco["annotations"]),
        buffer.tell(),
    )
    return buffer.getvalue()
