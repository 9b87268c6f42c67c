"""The export formats: one list, used by the chat downloads, the API and the CLI.

Each format is one ``ExportFormat`` entry: its name (``format=`` in the API,
``--format`` in the CLI, a download button in the chat), media type, file
name suffix and writer. Adding a format is one entry here and one writer.

A writer takes the analysed images and ``ExportOptions`` and returns the file's
bytes. ``errors`` (the API's failed uploads, ``{"index", "filename",
"error"}``) go where the format has room for them: a top-level ``errors`` key
in COCO, an ``errors.json`` member in the ZIPs; None writes no error list.
Blocking (encodes masks): call off the event loop.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.export.archive import masks_zip
from core.export.coco import to_coco
from core.export.items import ExportItem
from core.export.labelstudio import label_studio_json
from core.export.yolo import yolo_files

logger = logging.getLogger(__name__)

ERRORS_NAME = "errors.json"
DEFAULT_STEM = "paligemma"  # API and CLI files: paligemma.coco.json, ...
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # member timestamps: fixed, not the clock


@dataclass(frozen=True)
class ExportOptions:
    """``polygons``: COCO masks as polygons instead of RLE (formats with
    ``polygons=True``); ``errors``: failures to list (see the module docstring)."""

    polygons: bool = False
    errors: Sequence[dict[str, Any]] | None = None


Writer = Callable[[Sequence[ExportItem], ExportOptions], bytes]


@dataclass(frozen=True)
class ExportFormat:
    """One export format. ``polygons``: takes ``polygons=True``; ``overlays``:
    holds each item's ``overlay_png`` (the doors render them only for it);
    ``label``: what the chat's download button says."""

    name: str
    media_type: str
    suffix: str
    write: Writer
    label: str
    polygons: bool = False
    overlays: bool = False

    def file_name(self, stem: str = DEFAULT_STEM) -> str:
        """The download's file name for ``stem`` ("cat" -> "cat.coco.json")."""
        return f"{stem}{self.suffix}"


def _coco(items: Sequence[ExportItem], options: ExportOptions) -> bytes:
    document = to_coco(items, polygons=options.polygons)
    if options.errors is not None:  # COCO readers ignore keys they do not know
        document["errors"] = list(options.errors)
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _yolo(items: Sequence[ExportItem], options: ExportOptions) -> bytes:
    """``classes.txt``, ``labels/<stem>.txt`` per image (and ``errors.json``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in yolo_files(items).items():
            _write(archive, name, text)
        _write_errors(archive, options.errors)
    return buffer.getvalue()


def _zip(items: Sequence[ExportItem], options: ExportOptions) -> bytes:
    """``masks_zip`` (mask PNGs, COCO, YOLO, overlays) and ``errors.json``."""
    body = masks_zip(items, polygons=options.polygons)
    if options.errors is None:
        return body
    buffer = io.BytesIO(body)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        _write_errors(archive, options.errors)
    return buffer.getvalue()


def _label_studio(items: Sequence[ExportItem], options: ExportOptions) -> bytes:
    """Label Studio tasks; failures have no place in a task list (the API
    counts them in X-Failed-Items)."""
    return label_studio_json(items).encode("utf-8")


FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("coco", "application/json", ".coco.json", _coco, "COCO JSON", True),
    ExportFormat("yolo", "application/zip", "-yolo.zip", _yolo, "YOLO labels"),
    ExportFormat(
        "zip",
        "application/zip",
        "-masks.zip",
        _zip,
        "ZIP (masks, COCO, YOLO)",
        polygons=True,
        overlays=True,
    ),
    ExportFormat(
        "labelstudio",
        "application/json",
        ".labelstudio.json",
        _label_studio,
        "Label Studio",
    ),
)
FORMAT_NAMES = tuple(f.name for f in FORMATS)
POLYGON_FORMATS = tuple(f.name for f in FORMATS if f.polygons)
_BY_NAME = {f.name: f for f in FORMATS}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; ValueError listing the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"export format must be one of {', '.join(FORMAT_NAMES)}, got {name!r}"
        ) from None


def export_bytes(
    name: str, items: Sequence[ExportItem], options: ExportOptions = ExportOptions()
) -> bytes:
    """``items`` written as the format ``name``."""
    fmt = get_format(name)
    body = fmt.write(items, options)
    logger.debug("export %s: %d images, %d bytes", name, len(items), len(body))
    return body


def _write_errors(
    archive: zipfile.ZipFile, errors: Sequence[dict[str, Any]] | None
) -> None:
    if errors is not None:
        _write(
            archive, ERRORS_NAME, json.dumps(list(errors), ensure_ascii=False, indent=1)
        )


def _write(archive: zipfile.ZipFile, name: str, data: str | bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)
