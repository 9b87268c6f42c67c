"""core.images: format sniffing, limits, EXIF, modes; every input built in code."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile

from core.errors import ImageError, PayloadTooLargeError
from core.images import image_digest, load_image, sniff_format, to_rgb
from tests.support.images import SZ, encode, png_claiming, solid

LIMIT = 40_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
CMYK_RED = (0, 255, 255, 0)


def animated(fmt: str, colors=(RED, GREEN, BLUE), **kw) -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in colors]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)


def gradient16(low: int, high: int) -> Image.Image:
    """I;16 image, 64 wide: values rise from ``low`` to ``high`` left to right."""
    row = np.linspace(low, high, 64).astype(np.uint16)
    return Image.fromarray(np.tile(row, (8, 1)))


def p_with_transparency() -> bytes:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([*RED, *BLUE] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))  # left half index 1 (blue), right half index 0
    return encode(image, "PNG", transparency=0)


def rgba_half_red() -> bytes:
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    image.paste((0, 0, 255, 0), (4, 0, 8, 8))  # right half fully transparent blue
    return encode(image, "PNG")


def one_bit_checker() -> bytes:
    pixels = (np.indices((8, 8)).sum(axis=0) % 2).astype(bool)
    return encode(Image.fromarray(pixels), "PNG")


# (data builder, expected size, pixel (x, y), expected RGB, tolerance)
VALID = [
    (lambda: solid(RED, "PNG"), (24, 16), (3, 3), RED, 0),  # png
    (lambda: solid(RED, "JPEG", quality=95), (24, 16), (3, 3), RED, 6),  # jpeg
    (lambda: solid(RED, "WEBP", lossless=True), (24, 16), (3, 3), RED, 0),  # webp
    (lambda: solid(RED, "GIF"), (24, 16), (3, 3), RED, 0),  # gif
    (lambda: solid(RED, "BMP"), (24, 16), (3, 3), RED, 0),  # bmp
    (lambda: solid(RED, "TIFF"), (24, 16), (3, 3), RED, 0),  # tiff
    (lambda: solid(RED, "TIFF", compression="tiff_lzw"), SZ, (3, 3), RED, 0),  # lzw
    (rgba_half_red, (8, 8), (1, 1), (255, 127, 127), 1),  # rgba half alpha on white
    (rgba_half_red, (8, 8), (6, 1), WHITE, 0),  # rgba transparent -> white
    (lambda: solid((90, 0), "PNG", "LA"), (24, 16), (0, 0), WHITE, 0),  # la clear
    (p_with_transparency, (8, 8), (1, 1), BLUE, 0),  # p opaque index
    (p_with_transparency, (8, 8), (6, 1), WHITE, 0),  # p transparent index
    (lambda: solid(CMYK_RED, "TIFF", "CMYK"), (24, 16), (2, 2), RED, 0),  # cmyk
    (lambda: solid(CMYK_RED, "JPEG", "CMYK"), SZ, (2, 2), RED, 8),  # jpeg cmyk
    (lambda: solid(100, "PNG", "L"), (24, 16), (5, 5), (100, 100, 100), 0),  # l
    (one_bit_checker, (8, 8), (0, 0), (0, 0, 0), 0),  # 1-bit black square
    (one_bit_checker, (8, 8), (1, 0), WHITE, 0),  # 1-bit white square
    (lambda: animated("GIF"), (16, 16), (8, 8), RED, 0),  # animated gif
    (lambda: animated("WEBP", lossless=True), (16, 16), (8, 8), RED, 0),  # anim webp
    (lambda: animated("TIFF"), (16, 16), (8, 8), RED, 0),  # multi-page tiff
]


@pytest.mark.parametrize(("build", "size", "xy", "rgb", "tol"), VALID)
def test_load_image_valid(build: Callable[[], bytes], size, xy, rgb, tol) -> None:
    image = load_image(build(), max_pixels=LIMIT)
    assert image.mode == "RGB"
    assert image.size == size
    assert not isinstance(image, ImageFile.ImageFile)  # detached from the file
    assert np.abs(np.subtract(image.getpixel(xy), rgb)).max() <= tol


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
@pytest.mark.parametrize(
    ("low", "high"),
    [
        (0, 65535),  # full 16-bit range
        (1000, 4000),  # 12-bit camera data, mostly dark in 16-bit terms
        (60000, 65000),  # bright band: must not clip to white
    ],
)
def test_16_bit_grayscale_keeps_a_gradient(fmt: str, low: int, high: int) -> None:
    image = load_image(encode(gradient16(low, high), fmt), max_pixels=LIMIT)
    row = np.asarray(image)[0, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0)  # still rises left to right
    assert row[0] == 0 and row[-1] == 255  # uses the full 8-bit range
    assert len(np.unique(row)) > 32  # a gradient, not two flat bands


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("F", np.linspace(0.0, 1.0, 8), np.linspace(0, 255, 8)),  # float in 0..1
        ("F", np.linspace(-5.0, 5.0, 8), np.linspace(0, 255, 8)),  # float, wide
        ("I", np.arange(0, 8) * 30, np.arange(0, 8) * 30),  # int already 8-bit
    ],
)
def test_high_depth_modes_scale(mode: str, values, expected) -> None:
    dtype = np.float32 if mode == "F" else np.int32
    image = Image.fromarray(np.tile(values.astype(dtype), (2, 1)), mode=mode)
    row = np.asarray(to_rgb(image))[0, :, 1].astype(int)
    assert np.abs(row - np.rint(expected)).max() <= 1


def test_ycbcr_mode_converts_to_rgb() -> None:
    image = to_rgb(Image.new("RGB", (4, 4), RED).convert("YCbCr"))
    assert image.mode == "RGB"
    assert np.abs(np.subtract(image.getpixel((0, 0)), RED)).max() <= 3


def exif_oriented(fmt: str) -> bytes:
    """40x20 stored image, red 10x10 block at stored top-left, EXIF Orientation 6."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(image, fmt, exif=exif.tobytes())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_exif_orientation_6_rotates_clockwise(fmt: str) -> None:
    image = load_image(exif_oriented(fmt), max_pixels=LIMIT)
    assert image.size == (20, 40)  # width and height swapped
    top_right, top_left = image.getpixel((15, 4)), image.getpixel((4, 4))
    assert np.abs(np.subtract(top_right, RED)).max() <= 12  # stored top-left
    assert np.abs(np.subtract(top_left, BLUE)).max() <= 12


def truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(solid(RED, "PNG", size=(64, 64)))
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 24] = b"\xff" * 20  # garbage compressed stream
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "arrived"),
    [
        (b"", "empty"),  # zero bytes
        (b"hello, this is not a photo\n", "plain text"),  # text renamed .png
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
            "SVG",
        ),  # svg
        (b"<svg width='10' height='10'><rect/></svg>", "SVG"),  # bare svg
        (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),  # html
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),  # pdf
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),  # heic
        (bytes(range(200, 256)) * 4, "binary"),  # unknown binary
        (b"BM not really a bitmap at all", "plain text"),  # BM prefix, no header
    ],
    ids=["empty", "text", "svg", "bare-svg", "html", "pdf", "heic", "binary", "bm"],
)
def test_rejects_non_images_saying_what_arrived(data: bytes, arrived: str) -> None:
    with pytest.raises(ImageError) as excinfo:
        load_image(data, max_pixels=LIMIT)
    message = excinfo.value.message
    assert arrived in message
    assert "JPEG, PNG, WEBP, GIF, BMP or TIFF" in message


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: truncated("PNG"), "truncated or corrupt"),  # truncated png
        (lambda: truncated("JPEG"), "truncated or corrupt"),  # truncated jpeg
        (lambda: truncated("WEBP"), "corrupt"),  # truncated webp
        (corrupt_png, "truncated or corrupt"),  # bad zlib stream
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "header is not valid"),  # bad hdr
    ],
)
def test_rejects_truncated_or_corrupt(build, fragment: str) -> None:
    with pytest.raises(ImageError, match=fragment):
        load_image(build(), max_pixels=LIMIT)


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any pixel data is decoded."""

    def refuse(self):
        raise AssertionError("pixel data was decoded before the size check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.usefixtures("no_decoding")
@pytest.mark.parametrize(
    ("data", "max_pixels", "fragments"),
    [
        (png_claiming(20000, 20000), LIMIT, ["400,000,000", "40,000,000"]),  # bomb
        (png_claiming(10000, 10000), LIMIT, ["100,000,000", "40,000,000"]),  # warn zone
        (png_claiming(3000, 3000), 1_000_000, ["3000x3000", "1,000,000"]),  # own check
        (solid(RED, "JPEG", size=(2000, 10)), 10_000, ["2000x10", "10,000"]),  # jpeg
    ],
    ids=["bomb", "warn-zone", "own-check", "jpeg"],
)
def test_too_many_pixels_rejected_from_header(data, max_pixels, fragments) -> None:
    with pytest.raises(ImageError) as excinfo:  # no_decoding: refused from the header
        load_image(data, max_pixels=max_pixels)
    for fragment in fragments:
        assert fragment in excinfo.value.message


def test_max_bytes() -> None:
    data = solid(RED, "PNG", size=(64, 64))
    assert load_image(data, max_pixels=LIMIT, max_bytes=len(data)).size == (64, 64)
    with pytest.raises(PayloadTooLargeError) as excinfo:
        load_image(data, max_pixels=LIMIT, max_bytes=len(data) - 1)
    assert f"the limit is {len(data) - 1:,} bytes" in excinfo.value.message
    with pytest.raises(PayloadTooLargeError, match=r"1\.0 MB; the limit is 0\.5 MB"):
        load_image(b"\x00" * 1_000_000, max_pixels=LIMIT, max_bytes=500_000)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: solid(RED, "PNG"), "PNG"),  # png
        (lambda: solid(RED, "JPEG"), "JPEG"),  # jpeg
        (lambda: solid(RED, "WEBP"), "WEBP"),  # webp
        (lambda: solid(RED, "GIF"), "GIF"),  # gif
        (lambda: solid(RED, "BMP"), "BMP"),  # bmp
        (lambda: solid(RED, "TIFF"), "TIFF"),  # tiff
        (lambda: b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # riff but audio
        (lambda: b"<svg/>", None),  # svg
        (lambda: b"", None),  # empty
    ],
)
def test_sniff_format(build, expected: str | None) -> None:
    assert sniff_format(build()) == expected


def test_image_digest_tracks_pixels_size_and_mode() -> None:
    base = Image.new("RGB", (4, 4), RED)
    changed = base.copy()
    changed.putpixel((3, 3), (254, 0, 0))
    reshaped = Image.frombytes("RGB", (2, 8), base.tobytes())  # same bytes
    digest = image_digest(base)
    assert digest == image_digest(base.copy())
    assert len(digest) == 40
    assert len({digest, image_digest(changed), image_digest(reshaped)}) == 3
    assert image_digest(base.convert("L")) != image_digest(base.convert("P"))


def test_high_depth_conversion_is_banded_and_matches_the_whole_image() -> None:
    """Rows past the first band scale with the min/max of the whole image."""
    from core import images

    height = images._ROWS_PER_BAND * 2 + 7
    values = np.linspace(-1000.0, 3000.0, height * 5, dtype=np.float32)
    values[3] = np.nan  # counts as 0, as before
    image = Image.fromarray(values.reshape(height, 5), mode="F")
    gray = np.asarray(to_rgb(image))[..., 0].astype(int)
    clean = np.nan_to_num(values.astype(np.float64)).reshape(height, 5)
    expected = np.rint((clean - clean.min()) * 255.0 / (clean.max() - clean.min()))
    assert np.abs(gray - expected).max() <= 1
    assert gray.min() == 0 and gray.max() == 255


def test_decodes_beyond_the_limit_wait_then_refuse_clearly(monkeypatch) -> None:
    """MAX_CONCURRENT_DECODES: a decode finding every slot taken says so."""
    import threading

    from core import images
    from core.errors import BusyError

    monkeypatch.setattr(images, "DECODE_WAIT_S", 0.01)
    images.set_decode_limit(1)
    holding, release = threading.Event(), threading.Event()

    def hold_the_slot() -> None:
        with images._decode_slot():
            holding.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        assert holding.wait(timeout=30)
        with pytest.raises(BusyError, match="MAX_CONCURRENT_DECODES") as caught:
            load_image(solid(RED, "PNG"), max_pixels=LIMIT)
        assert "decoding 1 other image(s)" in caught.value.message
    finally:
        release.set()
        holder.join()
        images.set_decode_limit(2)
    assert load_image(solid(RED, "PNG"), max_pixels=LIMIT).mode == "RGB"
    with pytest.raises(ValueError, match="MAX_CONCURRENT_DECODES must be >= 1"):
        images.set_decode_limit(0)
