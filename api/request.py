"""REST request parsing and response encoding; no routes, no model calls.

Everything a client sends is checked here: body size (413), content type,
prompt length and control characters, base64.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import unicodedata
from typing import Any

from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from core.batch import detection_to_dict
from core.config import MB
from core.errors import (
    PayloadTooLargeError,
    UnsupportedMediaError,
    UserInputError,
)
from core.export.formats import FORMAT_NAMES, POLYGON_FORMATS
from core.export.masks import mask_to_png
from core.security.redact import redact
from core.types import Detection

FORM_SLACK_BYTES = 64 * 1024  # multipart boundaries and small fields
DRAIN_FACTOR = 4  # read (and drop) up to 4x the limit so the client sees the 413
# Bidirectional overrides/isolates and marks: invisible, and they reorder text.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e") | {
    chr(c) for c in range(0x2066, 0x206A)
}
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w=.+-]+)*;base64,", re.IGNORECASE)
INCLUDE_OPTIONS = ("overlay", "mask_png", "mask_rle")
# /v1/analyze response formats: JSON, or a file of core.export.formats
FORMATS = ("json", *FORMAT_NAMES)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 beyond ``max_bytes`` (never buffered)."""
    too_large = PayloadTooLargeError(
        f"The request body is larger than {max_bytes / MB:.1f} MB "
        "(MAX_UPLOAD_MB). Send a smaller or more compressed image."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_FACTOR * max_bytes:
        raise too_large
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total <= max_bytes:
            chunks.append(chunk)
        elif total > DRAIN_FACTOR * max_bytes:
            break
    if total > max_bytes:
        raise too_large
    body = b"".join(chunks)
    request._body = body  # starlette's form()/json() read this cached body
    return body


async def read_form(
    request: Request, max_bytes: int, max_files: int, too_many: str | None = None
) -> FormData:
    """The multipart (or url-encoded) form, size-capped; 415 for other types.

    More than ``max_files`` files is a 400 with ``too_many`` as the message
    (when given; otherwise Starlette's).
    """
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(
        ("multipart/form-data", "application/x-www-form-urlencoded")
    ):
        raise UnsupportedMediaError(
            "Send multipart/form-data (fields prompt and image_file), got "
            f"{content_type or 'no Content-Type'}."
        )
    await read_body(request, max_bytes + FORM_SLACK_BYTES)
    try:
        return await request.form(max_files=max_files, max_fields=32)
    except HTTPException as exc:
        if too_many is not None and "Too many files" in str(exc.detail):
            raise UserInputError(too_many) from exc
        raise


def form_text(form: FormData, name: str) -> str | None:
    """A text field, or None when absent; a file where text belongs is a 400."""
    values = form.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise UserInputError(f"Send the field {name!r} once, got {len(values)}.")
    value = values[0]
    if isinstance(value, UploadFile):
        raise UserInputError(f"The field {name!r} must be text, got a file upload.")
    return value


async def form_file(form: FormData, name: str) -> tuple[str, bytes] | None:
    """(filename, bytes) of an uploaded file field, or None when absent."""
    values = form.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise UserInputError(f"Send one {name!r} file, got {len(values)}.")
    value = values[0]
    if not isinstance(value, UploadFile):
        raise UserInputError(
            f"The field {name!r} must be a file upload (multipart), got text."
        )
    return value.filename or name, await value.read()


def clean_prompt(text: str | None, max_chars: int) -> str:
    """``text`` with control and bidi characters removed, whitespace collapsed.

    Raises UserInputError when missing, empty after cleaning, or longer than
    ``max_chars`` characters.
    """
    if text is None:
        raise UserInputError("The field 'prompt' is required, e.g. 'segment cat'.")
    if not isinstance(text, str):
        raise UserInputError(f"'prompt' must be text, got {type(text).__name__}.")
    if len(text) > max_chars:
        raise UserInputError(
            f"The prompt is {len(text):,} characters long; the limit is "
            f"{max_chars:,} (MAX_PROMPT_CHARS)."
        )
    kept = (  # tabs and line breaks stay: split() below turns them into spaces
        ch
        for ch in text
        if ch in "\t\n\r"
        or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )
    cleaned = " ".join("".join(kept).split())
    if not cleaned:
        raise UserInputError(
            "The prompt is empty (after removing control characters); say what "
            "to look for, e.g. 'segment cat' or 'detect dog ; bike'."
        )
    return cleaned


def decode_base64(text: Any, max_bytes: int) -> bytes:
    """Bytes of a base64 string (a ``data:...;base64,`` prefix is accepted)."""
    if not isinstance(text, str) or not text.strip():
        raise UserInputError("'base64Image' must be a non-empty base64 string.")
    payload = _DATA_URL.sub("", text.strip(), count=1)
    payload = "".join(payload.split())
    if len(payload.rstrip("=")) * 3 // 4 > max_bytes:  # the decoded size
        raise PayloadTooLargeError(
            f"The image is larger than {max_bytes / MB:.1f} MB (MAX_UPLOAD_MB)."
        )
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UserInputError(f"'base64Image' is not valid base64 ({exc}).") from exc
    return data


def parse_include(text: str | None) -> frozenset[str]:
    """Comma-separated include options; default ``mask_rle``."""
    if text is None:
        return frozenset({"mask_rle"})
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = wanted - set(INCLUDE_OPTIONS)
    if unknown:
        raise UserInputError(
            f"include takes {', '.join(INCLUDE_OPTIONS)}; got {sorted(unknown)}."
        )
    return frozenset(wanted)


def parse_format(text: str | None) -> str:
    """The /v1/analyze ``format`` (default ``json``); 400 listing the accepted."""
    fmt = (text or "json").strip().lower()
    if fmt not in FORMATS:
        raise UserInputError(
            f"format must be one of {', '.join(FORMATS)}; got {text!r}."
        )
    return fmt


def parse_polygons(text: str | None, fmt: str) -> bool:
    """The ``polygons`` flag (default false); only coco and zip take it."""
    if text is None:
        return False
    value = text.strip().lower()
    if value not in _TRUE + _FALSE:
        raise UserInputError(f"polygons must be true or false; got {text!r}.")
    polygons = value in _TRUE
    if polygons and fmt not in POLYGON_FORMATS:
        raise UserInputError(
            f"polygons=true applies to format {' or '.join(POLYGON_FORMATS)} "
            f"(COCO masks as polygons); got format={fmt!r}."
        )
    return polygons


def png_b64(image: Image.Image) -> str:
    """Base64 PNG of ``image`` (fast compression)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_png_b64(mask: Any) -> str:
    return base64.b64encode(mask_to_png(mask)).decode("ascii")


def error_json(code: str | None, message: object) -> dict[str, Any]:
    """The API's one error shape ``{"code", "message"}``, the message redacted
    (core.security.redact): every error body and per-item error is built here."""
    return {"code": code, "message": redact(message)}


def detection_json(det: Detection, include: frozenset[str]) -> dict[str, Any]:
    """One v1 detection: box_px in original pixels, area in pixels, masks opt-in."""
    item = detection_to_dict(det, with_rle="mask_rle" in include)
    if "mask_png" in include:
        item["mask_png"] = mask_png_b64(det.mask) if det.has_mask else None
    return item
