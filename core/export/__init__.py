"""Exports of analysis results: COCO (RLE), YOLO-seg, mask PNGs, ZIP, downloads.

``items.py`` what is exported and the safe names, ``coco.py`` and ``yolo.py``
the formats, ``archive.py`` the ZIP layout, ``masks.py`` the mask codecs (RLE,
polygons, PNG), ``downloads.py`` the chat's download files.
"""

from core.export.archive import masks_zip
from core.export.coco import category_names, to_coco
from core.export.items import (
    CLASSES_NAME,
    COCO_JSON_NAME,
    ZIP_TOP_LEVEL,
    ExportItem,
    category_name,
    export_stems,
    mask_file_names,
    safe_name,
    unique_stems,
)
from core.export.masks import mask_to_rle, polygon_to_mask, rle_to_mask
from core.export.yolo import to_yolo_seg, yolo_class_names, yolo_files

__all__ = [
    "CLASSES_NAME",
    "COCO_JSON_NAME",
    "ZIP_TOP_LEVEL",
    "ExportItem",
    "category_name",
    "category_names",
    "export_stems",
    "mask_file_names",
    "mask_to_rle",
    "masks_zip",
    "polygon_to_mask",
    "rle_to_mask",
    "safe_name",
    "to_coco",
    "to_yolo_seg",
    "unique_stems",
    "yolo_class_names",
    "yolo_files",
]
