"""Payloads for the API tests, built in memory: good, unusual and hostile
images, and the bad-request table run against the real server (test_api.py)."""

from __future__ import annotations

import base64
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


def ramp_jpeg(size_wh: tuple[int, int] = (4032, 3024)) -> bytes:
    """A photo-like JPEG (a left-to-right grey ramp); default: 12 MP."""
    width, height = size_wh
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
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


# Bad requests: (case id, path, request kwargs or a callable for costly ones,
# expected status, expected error code) ----------------------------------------

MAX_IMAGES = 6  # MAX_IMAGES_PER_REQUEST of the test server


def _seg(prompt="segment cat", **files):
    return {"data": {"prompt": prompt}, "files": files}


def seg_file(data: bytes, name: str = "x.png", prompt: str = "segment cat"):
    return _seg(prompt, image_file=(name, data, "image/png"))


def _seg_url(url: str):
    return {"data": {"prompt": "segment cat", "image_url": url}}


def _proc(body):
    return {"json": body}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_PNG = png()
_JPEG = jpeg((200, 150))
BAD_INPUTS = [
    # (case id, path, request kwargs (a callable when costly), status, code,
    #  key phrase of the error message)
    (
        "empty body",
        "/segment",
        {},
        415,
        "unsupported_media_type",
        "got no Content-Type",
    ),
    (
        "json to segment",
        "/segment",
        _proc({"prompt": "x"}),
        415,
        "unsupported_media_type",
        "got application/json",
    ),
    (
        "empty multipart",
        "/segment",
        {
            "content": b"--xyz--\r\n",
            "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
        },
        400,
        "bad_request",
        "'prompt' is required",
    ),
    ("zero bytes", "/segment", seg_file(b""), 415, "bad_image", "empty file (0 bytes)"),
    (
        "truncated png",
        "/segment",
        seg_file(_PNG[: len(_PNG) // 2]),
        415,
        "bad_image",
        "PNG image is truncated",
    ),
    (
        "truncated jpeg",
        "/segment",
        seg_file(_JPEG[: len(_JPEG) // 2]),
        415,
        "bad_image",
        "JPEG image is truncated",
    ),
    (
        "png signature only",
        "/segment",
        seg_file(_PNG[:8]),
        415,
        "bad_image",
        "starts like a PNG image",
    ),
    (
        "text named .png",
        "/segment",
        seg_file(b"hello world\n"),
        415,
        "bad_image",
        "looks like plain text",
    ),
    (
        "svg",
        "/segment",
        seg_file(SVG, "a.svg"),
        415,
        "bad_image",
        "looks like an SVG drawing",
    ),
    (
        "html",
        "/segment",
        seg_file(HTML, "a.png"),
        415,
        "bad_image",
        "looks like an HTML page",
    ),
    (
        "pdf",
        "/segment",
        seg_file(PDF, "a.pdf"),
        415,
        "bad_image",
        "looks like a PDF document",
    ),
    (
        "random binary",
        "/segment",
        seg_file(bytes(range(256)) * 4),
        415,
        "bad_image",
        "unrecognised binary data",
    ),
    (
        "gif header only",
        "/segment",
        seg_file(b"GIF89a\x10\x00"),
        415,
        "bad_image",
        "starts like a GIF image",
    ),
    (
        "tiff header only",
        "/segment",
        seg_file(b"II*\x00\x08\x00\x00\x00"),
        415,
        "bad_image",
        "starts like a TIFF image",
    ),
    (
        "100 MP bomb",
        "/segment",
        lambda: seg_file(png_bomb()),
        415,
        "bad_image",
        "100,000,000 pixels",
    ),
    (
        "huge prompt",
        "/segment",
        seg_file(_PNG, prompt="segment " + "cat " * 500),
        400,
        "bad_request",
        "limit is 500 (MAX_PROMPT_CHARS)",
    ),
    (
        "control-only prompt",
        "/segment",
        seg_file(_PNG, prompt="\x00\x01\x1b"),
        400,
        "bad_request",
        "The prompt is empty",
    ),
    (
        "rtl-override-only prompt",
        "/segment",
        seg_file(_PNG, prompt="\u202e\u202c\u200f"),
        400,
        "bad_request",
        "The prompt is empty",
    ),
    (
        "empty prompt",
        "/segment",
        seg_file(_PNG, prompt=""),
        400,
        "bad_request",
        "The prompt is empty",
    ),
    (
        "missing prompt",
        "/segment",
        {"files": {"image_file": ("a.png", _PNG)}},
        400,
        "bad_request",
        "'prompt' is required",
    ),
    (
        "undo is no model request",
        "/segment",
        seg_file(_PNG, prompt="undo"),
        400,
        "bad_request",
        "does not ask anything of the model",
    ),
    (
        "greeting",
        "/segment",
        seg_file(_PNG, prompt="hello"),
        400,
        "bad_request",
        "Tell me what to look for",
    ),
    (
        "neither image field",
        "/segment",
        {"data": {"prompt": "segment cat"}},
        400,
        "bad_request",
        "got neither",
    ),
    (
        "both image fields",
        "/segment",
        {
            "data": {"prompt": "segment cat", "image_url": "https://example.com/a.png"},
            "files": {"image_file": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "got both",
    ),
    (
        "image_file as text",
        "/segment",
        {"data": {"prompt": "segment cat", "image_file": "abc"}},
        400,
        "bad_request",
        "must be a file upload",
    ),
    (
        "prompt as file",
        "/segment",
        {"files": {"prompt": ("p.txt", b"segment cat"), "image_file": ("a.png", _PNG)}},
        400,
        "bad_request",
        "Too many files",
    ),
    (
        "two image files",
        "/segment",
        {
            "data": {"prompt": "segment cat"},
            "files": [("image_file", ("a.png", _PNG)), ("image_file", ("b.png", _PNG))],
        },
        400,
        "bad_request",
        "Too many files",
    ),
    (
        "model not allowed",
        "/segment",
        {
            **seg_file(_PNG),
            "data": {
                "prompt": "segment cat",
                "model_id": "google/paligemma2-28b-mix-448",
            },
        },
        403,
        "model_not_allowed",
        "is not served here",
    ),
    (
        "url disabled",
        "/segment",
        _seg_url("https://example.com/cat.png"),
        403,
        "url_refused",
        "Fetching images by URL is disabled",
    ),
    (
        "malformed multipart",
        "/segment",
        {
            "content": b"--xyz\r\nContent-Disposition: form-data; "
            b'name="prompt"\r\n\r\nseg',
            "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
        },
        400,
        "bad_request",
        "'prompt' is required",
    ),
    (
        "process: not json",
        "/process",
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
        400,
        "bad_request",
        "The body must be JSON",
    ),
    (
        "process: json array",
        "/process",
        _proc([1, 2]),
        400,
        "bad_request",
        "must be a JSON object",
    ),
    (
        "process: missing image",
        "/process",
        _proc({"prompt": "segment cat"}),
        400,
        "bad_request",
        "'base64Image' must be a non-empty",
    ),
    (
        "process: invalid base64",
        "/process",
        _proc({"prompt": "segment cat", "base64Image": "%%%not-b64%%%"}),
        400,
        "bad_request",
        "not valid base64",
    ),
    (
        "process: base64 of text",
        "/process",
        _proc(
            {
                "prompt": "segment cat",
                "base64Image": "data:image/png;base64," + _b64(b"plain text"),
            }
        ),
        415,
        "bad_image",
        "looks like plain text",
    ),
    (
        "process: prompt not text",
        "/process",
        _proc({"prompt": 42, "base64Image": _b64(_PNG)}),
        400,
        "bad_request",
        "'prompt' must be text, got int",
    ),
    (
        "process: missing prompt",
        "/process",
        _proc({"base64Image": _b64(_PNG)}),
        400,
        "bad_request",
        "'prompt' is required",
    ),
    (
        "analyze: no images",
        "/v1/analyze",
        {"data": {"prompt": "segment cat"}},
        400,
        "bad_request",
        "in the field 'images'",
    ),
    (
        "analyze: only bad images",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat"},
            "files": [("images", ("a.png", b"x")), ("images", ("b.png", SVG))],
        },
        415,
        "bad_image",
        "looks like plain text",
    ),
    (
        "analyze: unknown include",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "include": "polygons"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "include takes overlay",
    ),
    (
        "analyze: unknown decoding",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "decoding": "beam 99"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "got 'beam 99'",
    ),
    (
        "analyze: max_new_tokens text",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "max_new_tokens": "lots"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "max_new_tokens must be a whole number",
    ),
    (
        "analyze: max_new_tokens huge",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "max_new_tokens": "99999"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "must be in 1..2048, got 99999",
    ),
    (
        "analyze: too many images",
        "/v1/analyze",
        {
            "data": {"prompt": "caption en"},
            "files": [("images", (f"{i}.png", _PNG)) for i in range(MAX_IMAGES + 1)],
        },
        400,
        "bad_request",
        "at most 6 images",
    ),
    (
        "analyze: unknown format",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "format": "pascal-voc"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "got 'pascal-voc'",
    ),
    (
        "analyze: polygons with json",
        "/v1/analyze",
        {
            "data": {"prompt": "segment cat", "polygons": "true"},
            "files": {"images": ("a.png", _PNG)},
        },
        400,
        "bad_request",
        "polygons=true applies to format coco or zip",
    ),
]
