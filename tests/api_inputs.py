"""Image payloads for the API tests: good, unusual and hostile, built in memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def png(size_wh: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size_wh, 128).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(size_wh: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size_wh, 100).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def tiff16(size_wh: tuple[int, int] = (40, 30)) -> bytes:
    """A 16-bit greyscale TIFF with a ramp 0..65535."""
    width, height = size_wh
    ramp = np.linspace(0, 65535, width * height).reshape(height, width)
    buffer = io.BytesIO()
    Image.fromarray(ramp.astype(np.uint16)).save(buffer, format="TIFF")
    return buffer.getvalue()


def animated_gif(size_wh: tuple[int, int] = (32, 24), frames: int = 3) -> bytes:
    images = [Image.new("P", size_wh, i * 40) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int = 10_000, height: int = 10_000) -> bytes:
    """A valid greyscale PNG of width x height black pixels (~100 KB compressed)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
HTML = b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF"
