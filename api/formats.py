"""/v1/analyze results as files: a COCO document, a YOLO ZIP, the full ZIP.

Blocking (encodes masks): call off the event loop. Only successful images are
exported; failed ones are listed, never dropped silently:
- ``coco``: the COCO document plus a top-level ``errors`` list (COCO readers,
  pycocotools included, ignore keys they do not know);
- ``yolo`` and ``zip``: an ``errors.json`` member (``[]`` when none failed);
- every format: the ``X-Failed-Items`` header (added by the route).
Each failure is ``{"index", "filename", "error": {"code", "message"}}`` with
``index`` the 0-based position of the upload in the request.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Sequence
from typing import Any

from api.request import error_json
from core.batch import BatchItem, batch_to_export_items
from core.export import (
    ExportItem,
    masks_zip,
    to_coco,
    yolo_files,
)

logger = logging.getLogger(__name__)

ERRORS_NAME = "errors.json"
DOWNLOAD_NAMES = {
    "coco": "paligemma.coco.json",
    "yolo": "paligemma-yolo.zip",
    "zip": "paligemma-masks.zip",
}
MEDIA_TYPES = {"coco": "application/json", "yolo": "application/zip"}
MEDIA_TYPES["zip"] = MEDIA_TYPES["yolo"]
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # member timestamps: fixed, not the clock


def failed_items(items: Sequence[BatchItem]) -> list[dict[str, Any]]:
    """The failures of a request, in upload order (see the module docstring)."""
    return [
        {
            "index": index,
            "filename": item.name,
            "error": error_json(item.error_code, item.error),
        }
        for index, item in enumerate(items)
        if not item.ok
    ]


def encode_results(
    items: Sequence[BatchItem], fmt: str, *, polygons: bool, overlays: bool
) -> tuple[bytes, str, str]:
    """``(body, media type, download file name)`` of ``items`` as ``fmt``.

    ``fmt`` is ``coco``, ``yolo`` or ``zip``. ``polygons`` writes COCO masks
    as polygons instead of RLE (coco, zip); ``overlays`` adds each image's
    overlay PNG to the zip (the items must have kept their images).
    """
    if fmt not in DOWNLOAD_NAMES:
        raise ValueError(f"fmt must be one of {sorted(DOWNLOAD_NAMES)}, got {fmt!r}")
    errors = failed_items(items)
    exports = batch_to_export_items(items, overlays=overlays and fmt == "zip")
    if fmt == "coco":
        document = {**to_coco(exports, polygons=polygons), "errors": errors}
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    elif fmt == "yolo":
        body = yolo_zip(exports, errors)
    else:
        body = _append_errors(masks_zip(exports, polygons=polygons), errors)
    logger.debug(
        "encode_results: %s, %d ok, %d failed, %d bytes",
        fmt,
        len(exports),
        len(errors),
        len(body),
    )
    return body, MEDIA_TYPES[fmt], DOWNLOAD_NAMES[fmt]


def yolo_zip(items: Sequence[ExportItem], errors: list[dict[str, Any]]) -> bytes:
    """YOLO-seg labels: ``classes.txt`` (line i names class i),
    ``labels/<stem>.txt`` per image (empty when it has no objects; stems as
    in ``masks_zip``) and ``errors.json``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in yolo_files(items).items():
            _write(archive, name, text)
        _write(archive, ERRORS_NAME, _errors_json(errors))
    return buffer.getvalue()


def _append_errors(zip_bytes: bytes, errors: list[dict[str, Any]]) -> bytes:
    """``zip_bytes`` with an ``errors.json`` member added at the end."""
    buffer = io.BytesIO(zip_bytes)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        _write(archive, ERRORS_NAME, _errors_json(errors))
    return buffer.getvalue()


def _errors_json(errors: list[dict[str, Any]]) -> str:
    return json.dumps(errors, ensure_ascii=False, indent=1)


def _write(archive: zipfile.ZipFile, name: str, data: str | bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)
