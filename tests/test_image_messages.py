"""core.images: the exact message a user gets for each refused upload.

These messages are the product for bad input (the chat shows them as they
are, the API returns them as ``error.message``), so every case compares the
whole text.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageError, PayloadTooLargeError
from core.images import MB, _bomb_error, load_image
from tests.support.images import encode, png_claiming, solid

LIMIT = 40_000_000
ACCEPTED = "Please send a JPEG, PNG, WEBP, GIF, BMP or TIFF image."
HEIC = "a HEIC/AVIF image (not supported; export it as JPEG or PNG)"
BMP_24x16 = solid((255, 0, 0), "BMP")  # 1206 bytes: 42 4d b6 04 ...


def not_an_image(looks_like: str) -> str:
    return f"That is not an image I can read: it looks like {looks_like}. {ACCEPTED}"


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"", "an empty file (0 bytes)"),  # case: zero bytes
        (b"hello, this is not a photo\n", "plain text"),  # case: text named .png
        (b"a" + "\u00e9".encode() * 300, "plain text"),  # case: char cut at byte 512
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),  # case: pdf
        (b"<svg width='10' height='10'><rect/></svg>", "an SVG drawing"),  # case: svg
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            "an SVG drawing",
        ),  # case: svg with an XML declaration
        (
            b'\xef\xbb\xbf \r\n<?xml version="1.0"?><note>hi</note>',
            "an XML document",
        ),  # case: XML after a byte-order mark and blank lines
        (b"<!DOCTYPE html>\n<title>x</title>", "an HTML page"),  # case: doctype only
        (b"  <HTML><body>hi</body></HTML>", "an HTML page"),  # case: upper-case tag
        (b"<p>x</p>\n<html>", "an HTML page"),  # case: <html> further in
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", HEIC),  # case: heic
        (b"\x00\x00\x00\x18ftypheix\x00\x00\x00\x00", HEIC),  # case: heic 10-bit
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00", HEIC),  # case: heif image
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", HEIC),  # case: avif
        (
            bytes(range(200, 256)) * 4,
            "unrecognised binary data starting with c8 c9 ca cb cc cd ce cf",
        ),  # case: unknown binary, first 8 bytes shown
        (
            BMP_24x16[:17],
            "unrecognised binary data starting with 42 4d b6 04 00 00 00 00",
        ),  # case: BMP cut before its DIB header size
        (b"BM not really a bitmap at all", "plain text"),  # case: BM, no DIB size
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "plain text"),  # case: RIFF audio
    ],
)
def test_non_images_say_what_arrived(data: bytes, looks_like: str) -> None:
    with pytest.raises(ImageError) as caught:
        load_image(data, max_pixels=LIMIT)
    assert caught.value.message == not_an_image(looks_like)
    assert caught.value.http_status == 415


def truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
            f"The file starts like a PNG image but its header is not valid. {ACCEPTED}",
        ),  # case: PNG signature, garbage header
        (
            BMP_24x16[:18],
            "The BMP image is truncated or corrupt (Truncated File Read). "
            "Please upload the file again or export it anew.",
        ),  # case: BMP cut right after its DIB header size
        (
            truncated_png(),
            "The PNG image is truncated or corrupt (image file is truncated). "
            "Please upload the file again or export it anew.",
        ),  # case: PNG cut in half
    ],
)
def test_broken_images_name_their_format(data: bytes, message: str) -> None:
    with pytest.raises(ImageError) as caught:
        load_image(data, max_pixels=LIMIT)
    assert caught.value.message == message


def too_big(size: str, limit: str) -> str:
    return (
        f"The file is {size}; the limit is {limit}. "
        "Send a smaller or more compressed image."
    )


@pytest.mark.parametrize(
    ("size", "max_bytes", "message"),
    [
        (21 * MB, 20 * MB, too_big("21.0 MB", "20.0 MB")),  # case: MAX_UPLOAD_MB=20
        (
            20 * MB + 1,
            20 * MB,
            too_big("20,971,521 bytes", "20,971,520 bytes"),
        ),  # case: one byte over: the MB figures would be equal
        (3 * MB // 2, MB, too_big("1.5 MB", "1.0 MB")),  # case: 1.5 MB
        (100_000, 99_999, too_big("0.1 MB", "99,999 bytes")),  # case: MB from 100 kB
        (5_000, 4_096, too_big("5,000 bytes", "4,096 bytes")),  # case: small, bytes
    ],
)
def test_too_many_bytes(size: int, max_bytes: int, message: str) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        load_image(b"\x00" * size, max_pixels=LIMIT, max_bytes=max_bytes)
    assert caught.value.message == message
    assert caught.value.http_status == 413


def test_a_file_exactly_at_the_byte_limit_loads() -> None:
    data = solid((255, 0, 0), "PNG")
    assert load_image(data, max_pixels=LIMIT, max_bytes=len(data)).size == (24, 16)


def too_many(pixels: str, limit: str) -> str:
    return (
        f"The image has {pixels}; the limit is {limit} pixels "
        "(possible decompression bomb). Please send a smaller image."
    )


PILLOW_LIMIT = f"{Image.MAX_IMAGE_PIXELS:,}"  # 89,478,485


@pytest.mark.parametrize(
    ("data", "max_pixels", "message"),
    [
        (
            png_claiming(3000, 3000),
            1_000_000,
            "The image is 3000x3000 = 9,000,000 pixels; the limit is 1,000,000 "
            "pixels. Please send a smaller image.",
        ),  # case: our own check (MAX_IMAGE_PIXELS)
        (
            solid((255, 0, 0), "PNG"),
            383,
            "The image is 24x16 = 384 pixels; the limit is 383 pixels. "
            "Please send a smaller image.",
        ),  # case: one pixel over
        (
            png_claiming(20000, 20000),
            LIMIT,
            too_many("400,000,000 pixels", "40,000,000"),
        ),  # case: Pillow's bomb guard fires first; our limit is the tighter one
        (
            png_claiming(20000, 10000),
            500_000_000,
            too_many("200,000,000 pixels", PILLOW_LIMIT),
        ),  # case: under our limit but over Pillow's: Pillow's limit is named
        (
            png_claiming(20000, 10000),
            200_000_000,
            too_many("200,000,000 pixels", PILLOW_LIMIT),
        ),  # case: exactly our limit, over Pillow's
    ],
)
def test_too_many_pixels(data: bytes, max_pixels: int, message: str) -> None:
    with pytest.raises(ImageError) as caught:
        load_image(data, max_pixels=max_pixels)
    assert caught.value.message == message


def test_an_image_exactly_at_the_pixel_limit_loads() -> None:
    assert load_image(solid((255, 0, 0), "PNG"), max_pixels=24 * 16).size == (24, 16)


def test_a_bomb_error_without_a_pixel_count_still_reads_well() -> None:
    """Pillow's wording may change: without "(N pixels)" the message stays whole."""
    error = _bomb_error(Image.DecompressionBombError("too big"), 1_000)
    assert error.message == too_many("too many pixels", "1,000")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: load_image("a photo", max_pixels=LIMIT),
            TypeError,
            "data must be bytes, got str",
        ),  # case: text instead of bytes
        (
            lambda: load_image(b"x", max_pixels=0),
            ValueError,
            "max_pixels must be positive, got 0",
        ),  # case: a zero pixel limit
    ],
)
def test_caller_errors_say_expected_and_got(call, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == message


def test_any_bytes_like_input_and_a_one_pixel_limit_work() -> None:
    data = solid((0, 0, 255), "PNG", size=(1, 1))
    for same in (data, bytearray(data), memoryview(data)):
        assert load_image(same, max_pixels=1).getpixel((0, 0)) == (0, 0, 255)
