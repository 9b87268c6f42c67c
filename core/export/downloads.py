"""Files a chat reply offers: the overlay it shows and the exports to download.

Written into a session folder with unique names; the chat turns each
``Download`` into a Chainlit element. The exports are written when asked for
(a download button, "export"), in the formats of ``core.export.formats``.
Pure file I/O, no UI code.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core.export.formats import FORMATS, export_bytes, get_format
from core.export.items import ExportItem
from core.render import to_jpeg_bytes


@dataclass(frozen=True)
class Download:
    """A written file: ``name`` is what the user sees; ``inline`` images show."""

    path: Path
    name: str
    inline: bool = False


def _next_number(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern))) + 1


def file_label(file_name: str) -> str:
    """The name downloads of one photo start with ("cat.png" -> "cat")."""
    return Path(file_name).stem or "image"


def write_overlay(stored_image: Path, file_name: str, overlay: Image.Image) -> Download:
    """The overlay of one result as JPEG beside ``stored_image`` (shown inline)."""
    number = _next_number(stored_image.parent, f"{stored_image.stem}-*-overlay.jpg")
    overlay_path = stored_image.with_name(f"{stored_image.stem}-{number}-overlay.jpg")
    overlay_path.write_bytes(to_jpeg_bytes(overlay))
    return Download(overlay_path, f"{file_label(file_name)}-overlay.jpg", inline=True)


def write_result_export(stored_image: Path, item: ExportItem, name: str) -> Download:
    """One result (``item``) in the format ``name``, beside ``stored_image``.

    The chat leaves the overlay out of each answer's ZIP: it is the image
    shown (a PNG of it cost ~0.7 s at 12 MP); "export" ZIPs include it.
    """
    fmt = get_format(name)
    path = stored_image.with_name(
        f"{stored_image.stem}-{secrets.token_hex(6)}{fmt.suffix}"
    )
    path.write_bytes(export_bytes(name, [item]))
    return Download(path, fmt.file_name(file_label(item.file_name)))


def write_export_all(folder: Path, items: Sequence[ExportItem]) -> list[Download]:
    """Every format of ``FORMATS`` covering several images' results."""
    number = _next_number(folder, f"export-*{FORMATS[0].suffix}")
    label = f"export-{number}"
    downloads = []
    for fmt in FORMATS:
        path = folder / fmt.file_name(label)
        path.write_bytes(export_bytes(fmt.name, items))
        downloads.append(Download(path, fmt.file_name(label)))
    return downloads
