"""The export ZIP: mask PNGs per object, COCO, YOLO labels, overlays."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Sequence

from core.export.coco import to_coco
from core.export.items import (
    CLASSES_NAME,
    COCO_JSON_NAME,
    ExportItem,
    export_stems,
    mask_file_names,
)
from core.export.masks import (
    mask_to_png,
)
from core.export.masks import polygon_to_mask as polygon_to_mask  # re-exported
from core.export.masks import rle_to_mask as rle_to_mask  # re-exported
from core.export.yolo import yolo_files

logger = logging.getLogger(__name__)


_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # member timestamps: fixed, not the clock


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
