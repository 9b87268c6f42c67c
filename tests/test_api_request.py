"""api/request.py without a server: what the REST API reads from a client
(body size, form fields, prompt, base64, options) and how it encodes masks.

Requests are real Starlette ``Request`` objects over an ASGI ``receive`` that
records how many chunks the server pulled; multipart bodies are encoded by
httpx, as a client would send them. Error messages are compared whole where
the message is what the client reads."""

from __future__ import annotations

import base64
import io
import json
from contextlib import nullcontext as does_not_raise

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.request import (
    MB,
    clean_prompt,
    decode_base64,
    detection_json,
    form_file,
    form_text,
    mask_png_b64,
    parse_format,
    parse_include,
    parse_polygons,
    png_b64,
    read_body,
    read_form,
)
from core.errors import PayloadTooLargeError, UnsupportedMediaError, UserInputError
from core.export.masks import rle_to_mask
from core.types import Detection

SLACK = 64 * 1024  # read_form allows this much beyond the upload limit
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


class Client:
    """An ASGI request whose body arrives in ``chunks``; counts what was read."""

    def __init__(self, chunks: list[bytes], headers: dict[str, str]) -> None:
        self.chunks, self.pulled = list(chunks), 0
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "query_string": b"",
            "app": None,  # inside an app, Starlette reports form errors as 400
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
        self.request = Request(scope, self.receive)

    async def receive(self) -> dict:
        if not self.chunks:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.pulled += 1
        body = self.chunks.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(self.chunks)}


def _split(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)] or [b""]


def _form(data: dict | None = None, files: list | None = None) -> tuple[bytes, str]:
    """(body, content type) of a form as httpx encodes it."""
    sent = httpx.Request("POST", "http://api.test/", data=data, files=files)
    return sent.read(), sent.headers["content-type"]


def _form_client(data=None, files=None, chunk: int = 4096) -> Client:
    body, content_type = _form(data, files)
    return Client(_split(body, chunk), {"content-type": content_type})


def too_large_body(limit_mb: str) -> str:
    return (
        f"The request body is larger than {limit_mb} MB (MAX_UPLOAD_MB). "
        "Send a smaller or more compressed image."
    )


# read_body -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, 1),  # case: empty body
        (1000, 1000),  # case: one chunk
        (1000, 7),  # case: many chunks, joined in order
        (MB, 64 * 1024),  # case: exactly the limit is accepted
    ],
)
async def test_read_body_returns_the_whole_body(size: int, chunk: int) -> None:
    body = bytes(i % 251 for i in range(size))
    client = Client(_split(body, chunk), {"content-length": str(size)})
    assert await read_body(client.request, MB) == body


async def test_read_body_caches_the_body_for_json() -> None:
    payload = {"prompt": "segment cat", "base64Image": "AAAA"}
    client = Client(_split(json.dumps(payload).encode(), 5), {})
    await read_body(client.request, MB)
    assert await client.request.json() == payload  # the stream is not read twice


@pytest.mark.parametrize(
    ("max_bytes", "limit_mb"),
    [
        (MB, "1.0"),  # case: 1 MiB
        (MB * 3 // 2, "1.5"),  # case: the limit in MB with one decimal
        (MB // 10, "0.1"),  # case: under 1 MB
    ],
)
async def test_read_body_one_byte_over_is_413(max_bytes: int, limit_mb: str) -> None:
    body = b"x" * (max_bytes + 1)
    client = Client(_split(body, 4096), {})
    with pytest.raises(PayloadTooLargeError) as caught:
        await read_body(client.request, max_bytes)
    assert caught.value.message == too_large_body(limit_mb)
    assert caught.value.http_status == 413


async def test_read_body_declared_too_large_is_refused_unread() -> None:
    client = Client([b"x" * 10], {"content-length": str(4 * MB + 1)})
    with pytest.raises(PayloadTooLargeError) as caught:
        await read_body(client.request, MB)
    assert client.pulled == 0
    assert caught.value.message == too_large_body("1.0")


@pytest.mark.parametrize(
    "declared",
    [
        "4000",  # case: 4x the limit is drained, not refused up front
        "-5000",  # case: not a number
        "5e3",  # case: not digits
        "",  # case: empty header
    ],
)
async def test_read_body_reads_when_the_declared_length_is_not_over(
    declared: str,
) -> None:
    client = Client([b"small"], {"content-length": declared})
    assert await read_body(client.request, 1000) == b"small"
    assert client.pulled == 1


async def test_read_body_drains_up_to_four_times_the_limit_then_stops() -> None:
    """Undeclared oversize bodies: read (and drop) up to 4x so the client gets
    its 413, but never the whole of an endless upload."""
    client = Client([b"x" * 500] * 20, {})  # 10x the limit, no Content-Length
    with pytest.raises(PayloadTooLargeError):
        await read_body(client.request, 1000)
    assert client.pulled == 9  # 4500 bytes > 4 x 1000: stop there


async def test_read_body_oversize_within_the_drain_window_reads_it_all() -> None:
    client = Client([b"x" * 500] * 7, {})  # 3.5x the limit
    with pytest.raises(PayloadTooLargeError):
        await read_body(client.request, 1000)
    assert client.pulled == 7


# read_form -------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data",  # case: multipart
        "Multipart/Form-Data",  # case: media types are case-insensitive
        "application/x-www-form-urlencoded",  # case: url-encoded
        "APPLICATION/X-WWW-FORM-URLENCODED",  # case: url-encoded, upper case
    ],
)
async def test_read_form_accepts_form_types(content_type: str) -> None:
    if content_type.lower().startswith("multipart"):
        body, real = _form({"prompt": "segment cat"}, [("f", ("a.png", b"1"))])
        content_type = content_type + real[len("multipart/form-data") :]
    else:
        body = b"prompt=segment+cat"
    client = Client([body], {"content-type": content_type})
    form = await read_form(client.request, MB, max_files=1)
    assert form["prompt"] == "segment cat"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"content-type": "application/json"},
            "Send multipart/form-data (fields prompt and image_file), "
            "got application/json.",
        ),  # case: JSON
        (
            {"content-type": "Text/Plain"},
            "Send multipart/form-data (fields prompt and image_file), got text/plain.",
        ),  # case: named in lower case
        (
            {},
            "Send multipart/form-data (fields prompt and image_file), "
            "got no Content-Type.",
        ),  # case: no Content-Type
    ],
)
async def test_read_form_refuses_other_types_with_415(headers, message) -> None:
    client = Client([b"prompt=x"], headers)
    with pytest.raises(UnsupportedMediaError) as caught:
        await read_form(client.request, MB, max_files=1)
    assert caught.value.message == message
    assert caught.value.http_status == 415
    assert client.pulled == 0


async def test_read_form_allows_64_kib_for_the_form_around_the_upload() -> None:
    max_bytes = 100_000
    body, content_type = _form(files=[("image_file", ("a.bin", b""))])
    pad = max_bytes + SLACK - len(body)
    body, content_type = _form(files=[("image_file", ("a.bin", b"p" * pad))])
    assert len(body) == max_bytes + SLACK
    client = Client(_split(body, 8192), {"content-type": content_type})
    form = await read_form(client.request, max_bytes, max_files=1)
    assert len(await form["image_file"].read()) == pad

    body, content_type = _form(files=[("image_file", ("a.bin", b"p" * (pad + 1)))])
    client = Client(_split(body, 8192), {"content-type": content_type})
    with pytest.raises(PayloadTooLargeError) as caught:
        await read_form(client.request, max_bytes, max_files=1)
    assert caught.value.message == too_large_body("0.2")  # 164 KiB


async def test_read_form_too_many_files_gives_the_callers_message() -> None:
    files = [("images", (f"{i}.png", b"x")) for i in range(3)]
    client = _form_client(files=files)
    too_many = "Send at most 2 images per request (MAX_IMAGES_PER_REQUEST)."
    with pytest.raises(UserInputError) as caught:
        await read_form(client.request, MB, max_files=2, too_many=too_many)
    assert caught.value.message == too_many


async def test_read_form_at_the_file_limit_is_accepted() -> None:
    files = [("images", (f"{i}.png", b"x")) for i in range(2)]
    form = await read_form(_form_client(files=files).request, MB, max_files=2)
    assert [f.filename for f in form.getlist("images")] == ["0.png", "1.png"]


async def test_read_form_too_many_files_without_a_message_is_starlettes_400() -> None:
    files = [("images", (f"{i}.png", b"x")) for i in range(2)]
    with pytest.raises(HTTPException) as caught:
        await read_form(_form_client(files=files).request, MB, max_files=1)
    assert caught.value.status_code == 400
    assert "Too many files" in caught.value.detail


@pytest.mark.parametrize(
    ("fields", "expectation"),
    [
        (32, does_not_raise()),  # case: 32 text fields
        (33, pytest.raises(HTTPException, match="Too many fields")),  # case: 33
    ],
)
async def test_read_form_takes_at_most_32_fields(fields: int, expectation) -> None:
    data = {f"field{i}": "v" for i in range(fields)}
    client = _form_client(data=data, files=[("image_file", ("a.png", b"x"))])
    with expectation:
        form = await read_form(client.request, MB, max_files=1, too_many="files!")
        assert len(form) == fields + 1


# form_text / form_file -------------------------------------------------------


async def _read(data=None, files=None):
    return await read_form(_form_client(data, files).request, MB, max_files=4)


async def test_form_text() -> None:
    form = await _read({"prompt": "segment cat", "empty": ""})
    assert form_text(form, "prompt") == "segment cat"
    assert form_text(form, "empty") == ""
    assert form_text(form, "absent") is None


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        (
            {"prompt": ["a", "b"]},
            None,
            "Send the field 'prompt' once, got 2.",
        ),  # case: repeated
        (
            None,
            [("prompt", ("p.txt", b"segment cat"))],
            "The field 'prompt' must be text, got a file upload.",
        ),  # case: a file where text belongs
    ],
)
async def test_form_text_refuses(data, files, message: str) -> None:
    form = await _read(data, files)
    with pytest.raises(UserInputError) as caught:
        form_text(form, "prompt")
    assert caught.value.message == message


async def test_form_file() -> None:
    form = await _read(files=[("image_file", ("cat.png", PNG_BYTES))])
    assert await form_file(form, "image_file") == ("cat.png", PNG_BYTES)
    assert await form_file(form, "other") is None


async def test_form_file_without_a_filename_is_named_after_its_field() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name=image_file; filename=""\r\n'
        b"Content-Type: image/png\r\n\r\n" + PNG_BYTES + b"\r\n--B--\r\n"
    )
    client = Client([body], {"content-type": "multipart/form-data; boundary=B"})
    form = await read_form(client.request, MB, max_files=1)
    assert await form_file(form, "image_file") == ("image_file", PNG_BYTES)


@pytest.mark.parametrize(
    ("data", "files", "message"),
    [
        (
            None,
            [("image_file", ("a.png", b"1")), ("image_file", ("b.png", b"2"))],
            "Send one 'image_file' file, got 2.",
        ),  # case: two files
        (
            {"image_file": "cat.png"},
            None,
            "The field 'image_file' must be a file upload (multipart), got text.",
        ),  # case: text where a file belongs
    ],
)
async def test_form_file_refuses(data, files, message: str) -> None:
    form = await _read(data, files)
    with pytest.raises(UserInputError) as caught:
        await form_file(form, "image_file")
    assert caught.value.message == message


# clean_prompt ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("segment cat", "segment cat"),  # case: unchanged
        ("segment\tcat\nand\rdog", "segment cat and dog"),  # case: each is a space
        ("XRAY of a cat", "XRAY of a cat"),  # case: letters are never dropped
        ("\u200dcat\u200c", "\u200dcat\u200c"),  # case: joiners kept (Cf, not bidi)
        ("a\u061cb", "ab"),  # case: Arabic letter mark
        ("a\u200eb\u200fc", "abc"),  # case: LRM, RLM
        ("a\u202ab\u202bc\u202cd\u202de\u202ef", "abcdef"),  # case: embeddings
        ("a\u2066b\u2067c\u2068d\u2069e", "abcde"),  # case: isolates
        ("a\x7fb\x85c", "abc"),  # case: DEL and C1 controls
        ("x" * 100, "x" * 100),  # case: exactly the limit
    ],
)
def test_clean_prompt(text: str, expected: str) -> None:
    assert clean_prompt(text, 100) == expected


@pytest.mark.parametrize(
    ("text", "max_chars", "message"),
    [
        (None, 100, "The field 'prompt' is required, e.g. 'segment cat'."),  # case
        (42, 100, "'prompt' must be text, got int."),  # case: not a string
        (
            "x" * 1001,
            1000,
            "The prompt is 1,001 characters long; the limit is 1,000 "
            "(MAX_PROMPT_CHARS).",
        ),  # case: too long, thousands separated
        (
            " \t\u202e\x00 ",
            100,
            "The prompt is empty (after removing control characters); say what "
            "to look for, e.g. 'segment cat' or 'detect dog ; bike'.",
        ),  # case: nothing left
    ],
)
def test_clean_prompt_messages(text, max_chars: int, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        clean_prompt(text, max_chars)
    assert caught.value.message == message


# decode_base64 ---------------------------------------------------------------

B64 = base64.b64encode(PNG_BYTES).decode()


@pytest.mark.parametrize(
    "text",
    [
        B64,  # case: plain
        f"  {B64}\n",  # case: surrounding whitespace
        "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)),  # case: MIME
        "data:image/png;base64," + B64,  # case: data URL
        "DATA:Image/PNG;BASE64," + B64,  # case: data URL, upper case
        "data:image/svg+xml;charset=utf-8;base64," + B64,  # case: parameters
        " data:image/png;base64," + B64,  # case: data URL after a space
    ],
)
def test_decode_base64(text: str) -> None:
    assert decode_base64(text, len(PNG_BYTES)) == PNG_BYTES


@pytest.mark.parametrize("size", [774, 775, 776])  # 0, 2 and 1 "=" of padding
def test_decode_base64_accepts_exactly_the_limit_whatever_the_padding(
    size: int,
) -> None:
    """The size check counts decoded bytes, not padding characters."""
    data = PNG_BYTES[:size]
    text = base64.b64encode(data).decode()
    assert decode_base64(text, size) == data
    with pytest.raises(PayloadTooLargeError):
        decode_base64(text, size - 1)


def test_decode_base64_only_strips_one_leading_data_prefix() -> None:
    prefix = "data:image/png;base64,"
    with pytest.raises(UserInputError, match="not valid base64"):
        decode_base64(prefix + prefix + B64, 10_000)
    with pytest.raises(UserInputError, match="not valid base64"):
        decode_base64(B64 + prefix, 10_000)


@pytest.mark.parametrize(
    ("text", "padded"),
    [
        ("YQ", b"a"),  # case: two padding characters missing
        ("YWI", b"ab"),  # case: one missing
        ("YWJj", b"abc"),  # case: none missing
    ],
)
def test_decode_base64_restores_padding(text: str, padded: bytes) -> None:
    assert decode_base64(text, 100) == padded


@pytest.mark.parametrize(
    ("size", "expectation"),
    [
        (750, does_not_raise()),  # case: 1000 characters decode to 750 bytes
        (749, pytest.raises(PayloadTooLargeError)),  # case: one byte over
    ],
)
def test_decode_base64_size_limit(size: int, expectation) -> None:
    with expectation:
        assert decode_base64("A" * 1000, size) == bytes(750)


def test_decode_base64_too_large_message() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        decode_base64("A" * (4 * MB), 3 * MB // 2)
    assert caught.value.message == "The image is larger than 1.5 MB (MAX_UPLOAD_MB)."


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "'base64Image' must be a non-empty base64 string."),  # case: missing
        ("", "'base64Image' must be a non-empty base64 string."),  # case: empty
        (" \n ", "'base64Image' must be a non-empty base64 string."),  # case: blank
        (b"YWJj", "'base64Image' must be a non-empty base64 string."),  # case: bytes
        ("YW!j", "'base64Image' is not valid base64 ("),  # case: bad character
        ("Y", "'base64Image' is not valid base64 ("),  # case: one character
    ],
)
def test_decode_base64_refuses(text, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        decode_base64(text, 100)
    assert caught.value.message.startswith(message)
    if message.endswith("("):  # the decoder's own reason follows
        assert caught.value.message.endswith(").")
        assert len(caught.value.message) > len(message) + 2


# include / format / polygons -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, {"mask_rle"}),  # case: default
        ("overlay", {"overlay"}),  # case: one, replaces the default
        (" Overlay , MASK_PNG ,, mask_rle", {"overlay", "mask_png", "mask_rle"}),
        (" , ", set()),  # case: only separators
    ],
)
def test_parse_include(text, expected) -> None:
    assert parse_include(text) == expected


def test_parse_include_names_the_options_and_the_unknown() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_include("overlay,Polygons,boxes")
    assert caught.value.message == (
        "include takes overlay, mask_png, mask_rle; got ['boxes', 'polygons']."
    )


def test_parse_format_message() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_format("XML ")
    assert caught.value.message == (
        "format must be one of json, coco, yolo, zip, labelstudio; got 'XML '."
    )


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("1", "coco", True),  # case: 1
        ("yes", "zip", True),  # case: yes
        (" True ", "coco", True),  # case: spaces, case
        ("0", "json", False),  # case: 0
        ("no", "yolo", False),  # case: no
        ("off", "json", False),  # case: off
        ("", "json", False),  # case: empty is off
    ],
)
def test_parse_polygons_spellings(text: str, fmt: str, expected: bool) -> None:
    assert parse_polygons(text, fmt) is expected


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("maybe", "coco", "polygons must be true or false; got 'maybe'."),  # case
        (
            "true",
            "yolo",
            "polygons=true applies to format coco or zip (COCO masks as "
            "polygons); got format='yolo'.",
        ),  # case: wrong format
    ],
)
def test_parse_polygons_messages(text: str, fmt: str, message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        parse_polygons(text, fmt)
    assert caught.value.message == message


# encoding --------------------------------------------------------------------


def _decode_png(text: str) -> Image.Image:
    data = base64.b64decode(text, validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(data))


def test_png_b64_is_the_same_pixels() -> None:
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    back = _decode_png(png_b64(Image.fromarray(pixels)))
    assert back.mode == "RGB"
    assert np.array_equal(np.asarray(back), pixels)


def test_mask_png_b64_is_a_black_and_white_mask() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[1:3, 2:5] = True
    back = _decode_png(mask_png_b64(mask))
    assert back.mode == "L"
    assert np.array_equal(np.asarray(back), mask.astype(np.uint8) * 255)


def _detections() -> tuple[Detection, Detection]:
    mask = np.zeros((8, 10), dtype=bool)
    mask[2:5, 3:7] = True
    return Detection("cat", (3, 2, 7, 5), mask), Detection("dog", (0, 0, 4, 4))


@pytest.mark.parametrize(
    ("include", "rle", "png"),
    [
        ({"mask_rle"}, True, None),  # case: the default
        ({"mask_png"}, False, True),  # case: PNG only
        ({"mask_rle", "mask_png", "overlay"}, True, True),  # case: both
        (set(), False, None),  # case: neither
    ],
)
def test_detection_json(include: set[str], rle: bool, png: bool | None) -> None:
    cat, dog = _detections()
    item = detection_json(cat, frozenset(include))
    assert item["label"] == "cat"
    assert item["box_px"] == [3, 2, 7, 5]
    assert item["area"] == 12
    if rle:
        assert np.array_equal(rle_to_mask(item["mask_rle"]), cat.mask)
    else:
        assert item["mask_rle"] is None
    if png is None:
        assert "mask_png" not in item
    else:
        shown = np.asarray(_decode_png(item["mask_png"])) > 0
        assert np.array_equal(shown, cat.mask)
    box_only = detection_json(dog, frozenset(include))
    assert box_only["mask_rle"] is None
    assert box_only["box_px"] == [0, 0, 4, 4]
    if png is None:
        assert "mask_png" not in box_only
    else:
        assert box_only["mask_png"] is None
