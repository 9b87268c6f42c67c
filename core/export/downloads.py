"""Files a chat reply offers: the overlay it shows and the exports to download.

Written into a session folder with unique names; the chat turns each
``Download`` into a Chainlit element. Pure file I/O, no UI code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from core.export import ExportItem, masks_zip, to_coco
from core.render import to_jpeg_bytes, to_png_bytes


@dataclass(frozen=True)
class Download:
    """A written file: ``name`` is what the user sees; ``inline`` images show."""

    path: Path
    name: str
    inline: bool = False


def _next_number(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) + 1


def _exports(base: Path, label: str, items: Sequence[ExportItem]) -> list[Download]:
    zip_path = base.with_name(base.name + "-export.zip")
    zip_path.write_bytes(masks_zip(items))
    coco_path = base.with_name(base.name + "-coco.json")
    coco_path.write_text(json.dumps(to_coco(items)), encoding="utf-8")
    return [
        Download(zip_path, f"{label}-masks-coco-yolo.zip"),
        Download(coco_path, f"{label}.coco.json"),
    ]


def write_result_downloads(
    stored_image: Path, item: ExportItem, overlay: Image.Image
) -> list[Download]:
    """The overlay (JPEG, shown inline) and, with objects, the exports of one result.

    Files go beside ``stored_image``, numbered per result.
    """
    shown = write_overlay(stored_image, item.file_name, overlay)
    if not item.detections:
        return [shown]
    with_png = replace(item, overlay_png=to_png_bytes(overlay))
    return [shown, *write_result_exports(shown, with_png)]


def write_overlay(stored_image: Path, file_name: str, overlay: Image.Image) -> Download:
    """The overlay of one result as JPEG beside ``stored_image`` (shown inline)."""
    number = _next_number(stored_image.parent, f"{stored_image.stem}-*-overlay.jpg")
    overlay_path = stored_image.with_name(f"{stored_image.stem}-{number}-overlay.jpg")
    overlay_path.write_bytes(to_jpeg_bytes(overlay))
    label = Path(file_name).stem or "image"
    return Download(overlay_path, f"{label}-overlay.jpg", inline=True)


def write_result_exports(shown: Download, item: ExportItem) -> list[Download]:
    """ZIP (full-size mask PNGs, COCO, YOLO; ``item.overlay_png`` when set) and
    COCO JSON of the result whose overlay ``write_overlay`` wrote as ``shown``.

    The chat leaves the overlay out of each answer's ZIP: it is the image
    shown (a PNG of it cost ~0.7 s at 12 MP); "export" ZIPs include it."""
    base = shown.path.with_name(shown.path.name.removesuffix("-overlay.jpg"))
    label = Path(item.file_name).stem or "image"
    return _exports(base, label, [item])


def write_export_all(folder: Path, items: Sequence[ExportItem]) -> list[Download]:
    """One ZIP and one COCO JSON covering several images' results."""
    number = _next_number(folder, "export-*-export.zip")
    return _exports(folder / f"export-{number}", f"export-{number}", items)
