"""Image bytes built in code for the core.images tests (no fixture files)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

SZ = (24, 16)  # default test image size (w, h)


def encode(image: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def solid(color, fmt: str, mode: str = "RGB", size=SZ, **kw) -> bytes:
    return encode(Image.new(mode, size, color), fmt, **kw)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG: IHDR claims ``width x height``, the IDAT is tiny."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )
