"""Uploaded bytes -> a validated, fully loaded RGB PIL image.

The format is sniffed from the bytes (a filename or a browser's mime claim is
never trusted). Size limits are checked on the header before any pixel data is
decoded, EXIF orientation is applied and every mode ends as 8-bit RGB.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ImageError, PayloadTooLargeError

logger = logging.getLogger(__name__)

# Pillow format names, as ``Image.format`` spells them.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
ACCEPTED_TEXT = "JPEG, PNG, WEBP, GIF, BMP or TIFF"

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),  # little-endian TIFF
    (b"MM\x00*", "TIFF"),  # big-endian TIFF
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # DIB header sizes Pillow reads
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
# Raised by Pillow plugins on bad or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name of ``data`` from its magic bytes, or None.

    Only ACCEPTED_FORMATS are recognised; anything else (SVG, HTML, PDF, text,
    HEIC, empty) gives None.
    """
    head = bytes(data[:32])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 18 and head[:2] == b"BM":
        (dib_size,) = struct.unpack_from("<I", head, 14)
        if dib_size in _BMP_HEADER_SIZES:
            return "BMP"
    return None


def describe_bytes(data: bytes) -> str:
    """A short human description of what ``data`` looks like, for error messages."""
    if len(data) == 0:
        return "an empty file (0 bytes)"
    head = bytes(data[:512]).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf"):
        return "a PDF document"
    if b"<svg" in head:
        return "an SVG drawing"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page"
    if head.startswith(b"<?xml"):
        return "an XML document"
    if bytes(data[4:12]) in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIC/AVIF image (not supported; export it as JPEG or PNG)"
    try:
        bytes(data[:512]).decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised binary data starting with {bytes(data[:8]).hex(' ')}"
    return "plain text"


def load_image(
    data: bytes, *, max_pixels: int, max_bytes: int | None = None
) -> Image.Image:
    """Decode uploaded bytes into a validated RGB image.

    Args:
        data: the raw file bytes.
        max_pixels: largest width * height accepted; checked on the header,
            before pixel data is decoded.
        max_bytes: largest payload accepted, or None for no byte limit.

    Returns:
        A fully loaded ``RGB`` image (8 bits per channel), EXIF orientation
        applied, first frame of an animation, detached from any file.

    Raises:
        PayloadTooLargeError: ``len(data) > max_bytes``.
        ImageError: not an accepted format, too many pixels, truncated or
            corrupt data, or an unsupported pixel mode.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if max_bytes is not None and len(data) > max_bytes:
        raise PayloadTooLargeError(
            f"The file is {_human_bytes(len(data))}; the limit is "
            f"{_human_bytes(max_bytes)}. Send a smaller or more compressed image."
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(
            f"That is not an image I can read: it looks like {describe_bytes(data)}. "
            f"Please send a {ACCEPTED_TEXT} image."
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice its limit: refuse those too.
            # catch_warnings swaps process-wide filters; interleaved threads can at
            # worst leave this one filter (bomb warning -> error) in place.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as opened:
                _check_pixels(opened.size, max_pixels)
                opened.seek(0)  # first frame of an animation
                opened.load()  # full decode: surfaces truncated or corrupt data
                image = _apply_exif_orientation(opened)
                rgb = to_rgb(image)
                if rgb is opened:  # detach from the file before it is closed
                    rgb = rgb.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(exc, max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"The file starts like a {fmt} image but its header is not valid. "
            f"Please send a {ACCEPTED_TEXT} image."
        ) from exc
    except _DECODE_ERRORS as exc:
        logger.info("Rejected a %s upload of %d bytes: %s", fmt, len(data), exc)
        raise ImageError(
            f"The {fmt} image is truncated or corrupt ({exc}). "
            "Please upload the file again or export it anew."
        ) from exc
    logger.debug("Loaded %s %dx%d as RGB", fmt, *rgb.size)
    return rgb


def _human_bytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count:,} bytes"


def _check_pixels(size_wh: tuple[int, int], max_pixels: int) -> None:
    width, height = size_wh
    if width * height > max_pixels:
        raise ImageError(
            f"The image is {width}x{height} = {width * height:,} pixels; the limit "
            f"is {max_pixels:,} pixels. Please send a smaller image."
        )


def _bomb_error(exc: Exception, max_pixels: int) -> ImageError:
    """Pillow's own decompression-bomb guard fired before our check could."""
    match = _BOMB_PIXELS.search(str(exc))
    pixels = int(match.group(1)) if match else None
    limit = max_pixels
    if pixels is not None and pixels <= max_pixels and Image.MAX_IMAGE_PIXELS:
        limit = Image.MAX_IMAGE_PIXELS  # Pillow's backstop is the tighter one
    size_text = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
    return ImageError(
        f"The image has {size_text}; the limit is {limit:,} pixels "
        "(possible decompression bomb). Please send a smaller image."
    )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip by the EXIF Orientation tag; a broken EXIF block is ignored."""
    try:
        return ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, KeyError, TypeError) as exc:
        logger.warning("Ignoring unreadable EXIF orientation: %s", exc)
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.

    Transparency (RGBA, LA, PA, P or L/RGB with a tRNS colour) is composited on
    white. 16-bit and 32-bit integer or float modes keep their contrast: values
    already in 0..255 (integers) or 0..1 (floats) keep that scale, anything
    wider is stretched linearly from its min..max to 0..255.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith(("I", "F")):
        return _high_depth_to_rgb(image)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA")
    if has_alpha or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # P, CMYK, L, 1, YCbCr, LAB, HSV, ...
    except ValueError as exc:
        raise ImageError(f"Unsupported pixel mode {mode!r}: {exc}") from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    raw = np.asarray(image)
    if raw.ndim != 2:
        raise ImageError(f"Unsupported pixel mode {image.mode!r} {raw.shape}")
    values = np.nan_to_num(raw.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(raw.dtype, np.floating) and 0 <= low <= high <= 1:
        scaled = values * 255.0
    elif 0 <= low and high <= 255:
        scaled = values
    else:
        span = high - low
        scaled = (values - low) * (255.0 / span) if span else np.zeros_like(values)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def image_digest(image: Image.Image) -> str:
    """sha1 hex of size, mode and pixel bytes: equal for equal pixels (cache key)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{image.width}x{image.height}:{image.mode}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
