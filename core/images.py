"""Uploaded bytes -> a validated, fully loaded RGB PIL image.

The format is sniffed from the bytes (a filename or a browser's mime claim is
never trusted). Size limits are checked on the header before any pixel data is
decoded, EXIF orientation is applied and every mode ends as 8-bit RGB.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import logging
import re
import struct
import threading
import warnings
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.config import MB
from core.errors import BusyError, ImageError, PayloadTooLargeError

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
ORIENTATION_TAG = 0x0112  # EXIF Orientation
TURNING_ORIENTATIONS = range(2, 9)  # 2..8 flip and/or rotate; 1 is upright
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
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if len(head) >= 18 and head[:2] == b"BM":  # the DIB header size is at 14..18
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
    if head.startswith(b"<!doctype html") or b"<html" in head:
        return "an HTML page"
    if head.startswith(b"<?xml"):
        return "an XML document"
    if bytes(data[4:12]) in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIC/AVIF image (not supported; export it as JPEG or PNG)"
    try:  # incremental: a character cut at byte 512 is still text
        codecs.getincrementaldecoder("utf-8")().decode(bytes(data[:512]))
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
        BusyError: every decode slot stayed taken for DECODE_WAIT_S.
    """
    return decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes)[0]


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    reduce_to_side: int | None = None,
) -> tuple[Image.Image, tuple[int, int]]:
    """``load_image`` that may decode a JPEG at a reduced scale.

    With ``reduce_to_side``, a JPEG is decoded by libjpeg at the first of the
    1/2, 1/4, 1/8 scales whose longest side is <= ``reduce_to_side`` (a
    fraction of the time and memory of a full decode); other formats are
    decoded in full. Returns the RGB image and the *original* ``(width,
    height)`` after EXIF orientation, which is what boxes are measured in.
    At most ``set_decode_limit`` decodes run at once in this process.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if max_bytes is not None and len(data) > max_bytes:
        size_text, limit_text = _human_bytes(len(data)), _human_bytes(max_bytes)
        if size_text == limit_text:  # "20.0 MB; the limit is 20.0 MB" says nothing
            size_text, limit_text = f"{len(data):,} bytes", f"{max_bytes:,} bytes"
        raise PayloadTooLargeError(
            f"The file is {size_text}; the limit is {limit_text}. "
            "Send a smaller or more compressed image."
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(
            f"That is not an image I can read: it looks like {describe_bytes(data)}. "
            f"Please send a {ACCEPTED_TEXT} image."
        )
    with _decode_slot():
        return _decode(data, fmt, max_pixels, reduce_to_side)


def _decode(
    data: bytes, fmt: str, max_pixels: int, reduce_to_side: int | None
) -> tuple[Image.Image, tuple[int, int]]:
    try:
        with warnings.catch_warnings():
            # Pillow warns between its limit and twice its limit: refuse those too.
            # catch_warnings swaps process-wide filters; interleaved threads can at
            # worst leave this one filter (bomb warning -> error) in place.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as opened:
                _check_pixels(opened.size, max_pixels)
                full_wh = opened.size
                opened.seek(0)  # first frame of an animation
                if reduce_to_side and fmt == "JPEG":
                    _draft_at_most(opened, reduce_to_side)
                opened.load()  # full decode: surfaces truncated or corrupt data
                image = _apply_exif_orientation(opened)
                if image.size != opened.size:  # rotated by 90 or 270 degrees
                    full_wh = (full_wh[1], full_wh[0])
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
    logger.debug("Loaded %s %dx%d as RGB %dx%d", fmt, *full_wh, *rgb.size)
    return rgb, full_wh


# Concurrent decodes ------------------------------------------------------------

DECODE_WAIT_S = 30.0  # how long a decode waits for a free slot before "busy"
_decode_limit = 2
_decode_slots = threading.BoundedSemaphore(_decode_limit)


def set_decode_limit(count: int) -> None:
    """Allow ``count`` (>= 1) image decodes at once in this process
    (MAX_CONCURRENT_DECODES): each one may hold a few hundred MB."""
    global _decode_limit, _decode_slots
    if count < 1:
        raise ValueError(f"MAX_CONCURRENT_DECODES must be >= 1, got {count}")
    _decode_limit, _decode_slots = count, threading.BoundedSemaphore(count)


@contextlib.contextmanager
def _decode_slot() -> Iterator[None]:
    slots = _decode_slots
    if not slots.acquire(timeout=DECODE_WAIT_S):
        raise BusyError(
            f"The server is decoding {_decode_limit} other image(s) and none "
            f"finished within {DECODE_WAIT_S:.0f} s; please send the image again "
            "in a moment (the operator can raise MAX_CONCURRENT_DECODES)."
        )
    try:
        yield
    finally:
        slots.release()


def _draft_at_most(jpeg: Image.Image, side: int) -> None:
    """Let libjpeg decode at 1/2, 1/4 or 1/8 scale (DCT scaling, a fraction of
    the time and memory) down to the first scale whose longest side <= side."""
    width, height = jpeg.size
    scale = 1
    while scale < 8 and max(width, height) / scale > side:
        scale *= 2
    if scale > 1:
        jpeg.draft(None, (width // scale, height // scale))  # None: keep the mode


def _human_bytes(count: int) -> str:
    return f"{count / MB:.1f} MB" if count >= 100_000 else f"{count:,} bytes"


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
    """Rotate/flip by the EXIF Orientation tag; a broken EXIF block is ignored.

    Without a turning tag the image itself comes back (exif_transpose would
    return a full copy).
    """
    try:
        if image.getexif().get(ORIENTATION_TAG) not in TURNING_ORIENTATIONS:
            return image
        return ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, KeyError, TypeError) as exc:
        logger.warning("Ignoring unreadable EXIF orientation: %s", exc)
        return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.

    Transparency (RGBA, LA, PA, P or L/RGB with a tRNS colour) is composited on
    white. 16-bit and 32-bit integer or float modes keep their contrast: float
    values in 0..1 are scaled by 255, values in 0..255 are taken as 8-bit
    levels, anything wider is stretched linearly from its min..max to 0..255
    (NaN and infinities count as 0).
    """
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode.startswith(("I", "F")):
        return _high_depth_to_rgb(image)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA")
    if has_alpha or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        # Pillow converts premultiplied La only to LA; RGBa and PA go straight.
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # P, CMYK, L, 1, YCbCr, LAB, HSV, ...
    except ValueError as exc:
        raise ImageError(f"Unsupported pixel mode {mode!r}: {exc}") from exc


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float gray -> RGB, in float32 row bands.

    Reads the image band by band, so the extra memory is the 8-bit result
    plus one float32 band, not several float64 copies of the whole image (a
    40 MP float TIFF of 268 KB once cost 1.4 GB here).
    """
    low, high, floating = np.inf, -np.inf, False
    for _, band in _bands(image):
        floating = band.dtype.kind == "f"
        finite = band[np.isfinite(band)] if floating else band
        if finite.size != band.size:
            low, high = min(low, 0.0), max(high, 0.0)  # NaN/inf count as 0
        if finite.size:
            low, high = min(low, float(finite.min())), max(high, float(finite.max()))
    if floating and 0 <= low <= high <= 1:
        offset, factor = 0.0, 255.0
    elif 0 <= low and high <= 255:
        offset, factor = 0.0, 1.0
    else:
        span = high - low
        offset, factor = low, (255.0 / span if span else 0.0)
    gray = np.empty((image.height, image.width), dtype=np.uint8)
    for top, raw in _bands(image):
        band = raw.astype(np.float32)
        np.nan_to_num(band, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        band -= offset
        band *= factor
        np.rint(band, out=band)
        np.clip(band, 0, 255, out=band)
        gray[top : top + len(band)] = band
    return Image.fromarray(gray).convert("RGB")


_ROWS_PER_BAND = 256  # high-depth conversion reads row bands of this height


def _bands(image: Image.Image) -> Iterator[tuple[int, np.ndarray]]:
    """(top row, 2-D array) per band of rows, without copying the whole image."""
    for top in range(0, image.height, _ROWS_PER_BAND):
        bottom = min(image.height, top + _ROWS_PER_BAND)
        yield top, np.asarray(image.crop((0, top, image.width, bottom)))


def image_digest(image: Image.Image) -> str:
    """sha1 hex of size, mode and pixel bytes: equal for equal pixels (cache key)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(f"{image.width}x{image.height}:{image.mode}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
