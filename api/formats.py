"""/v1/analyze results as files, in the formats of ``core.export.formats``.

Blocking (encodes masks): call off the event loop. Only successful images are
exported; failed ones are listed, never dropped silently:
- ``coco``: the COCO document plus a top-level ``errors`` list (COCO readers,
  pycocotools included, ignore keys they do not know);
- ``yolo`` and ``zip``: an ``errors.json`` member (``[]`` when none failed);
- ``labelstudio``: a task list has no room for them: the header only;
- every format: the ``X-Failed-Items`` header (added by the route).
Each failure is ``{"index", "filename", "error": {"code", "message"}}`` with
``index`` the 0-based position of the upload in the request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from api.request import error_json
from core.batch import BatchItem, batch_to_export_items
from core.export.formats import ExportOptions, export_bytes, get_format

logger = logging.getLogger(__name__)


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

    ``fmt`` names a format of ``core.export.formats.FORMATS``. ``polygons``
    writes COCO masks as polygons instead of RLE (formats that take it);
    ``overlays`` adds each image's overlay PNG where the format holds them
    (the items must have kept their images).
    """
    export = get_format(fmt)
    errors = failed_items(items)
    exports = batch_to_export_items(items, overlays=overlays and export.overlays)
    body = export_bytes(fmt, exports, ExportOptions(polygons=polygons, errors=errors))
    logger.debug(
        "encode_results: %s, %d ok, %d failed, %d bytes",
        fmt,
        len(exports),
        len(errors),
        len(body),
    )
    return body, export.media_type, export.file_name()
