"""What an export is made of: one analysed image (ExportItem) and safe names.

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

import logging
import re
import unicodedata
from collections.abc import Sequence, Set
from dataclasses import dataclass

from core.export.masks import polygon_to_mask as polygon_to_mask  # re-exported
from core.export.masks import rle_to_mask as rle_to_mask  # re-exported
from core.types import Detection

logger = logging.getLogger(__name__)

COCO_JSON_NAME = "annotations.coco.json"
CLASSES_NAME = "classes.txt"
# Top-level names in an export ZIP (errors.json is added by the API): no image
# folder may take one of them.
ZIP_TOP_LEVEL = frozenset({"labels", COCO_JSON_NAME, CLASSES_NAME, "errors.json"})


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
    its own mask). ``overlay_png`` is optional PNG bytes. ``captions``: one
    per detection ("describe each object"), written to COCO as each
    annotation's ``attributes.caption``; () when there are none.
    """

    file_name: str
    size_wh: tuple[int, int]
    detections: tuple[Detection, ...] = ()
    overlay_png: bytes | None = None
    captions: tuple[str, ...] = ()

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
