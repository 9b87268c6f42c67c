"""core.images: reduced JPEG decoding, every EXIF orientation, transparency and
exact gray levels of high-depth images; inputs built in code, pixels exact."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.images import decode_image, load_image, to_rgb
from tests.support.images import encode, solid

LIMIT = 40_000_000
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


@pytest.fixture(scope="module")
def jpeg_2001x1001() -> bytes:
    """Odd sizes, so a wrong scale cannot round to the right one."""
    image = Image.new("RGB", (2001, 1001), BLUE)
    image.paste(RED, (0, 0, 1000, 1001))  # left half red
    return encode(image, "JPEG", quality=95)


@pytest.mark.parametrize(
    ("side", "size"),
    [
        (5000, (2001, 1001)),  # case: already small enough: full decode
        (2001, (2001, 1001)),  # case: longest side exactly the target
        (1200, (1001, 501)),  # case: 1/2
        (600, (501, 251)),  # case: 1/4
        (250, (251, 126)),  # case: 1/8
        (100, (251, 126)),  # case: libjpeg goes no further than 1/8
    ],
)
def test_jpeg_is_decoded_at_the_first_scale_that_fits(
    jpeg_2001x1001: bytes, side: int, size: tuple[int, int]
) -> None:
    image, original_wh = decode_image(
        jpeg_2001x1001, max_pixels=LIMIT, reduce_to_side=side
    )
    assert image.size == size
    assert original_wh == (2001, 1001)  # boxes stay in the original's pixels
    assert image.mode == "RGB"
    width = image.size[0]
    assert np.abs(np.subtract(image.getpixel((width // 4, 5)), RED)).max() <= 8
    assert np.abs(np.subtract(image.getpixel((width * 3 // 4, 5)), BLUE)).max() <= 8


def test_a_scale_landing_exactly_on_the_side_is_taken() -> None:
    data = solid(RED, "JPEG", size=(1600, 1000))
    image, original_wh = decode_image(data, max_pixels=LIMIT, reduce_to_side=400)
    assert (image.size, original_wh) == ((400, 250), (1600, 1000))


def test_only_jpeg_is_reduced() -> None:
    data = solid(RED, "PNG", size=(2001, 1001))
    image, original_wh = decode_image(data, max_pixels=LIMIT, reduce_to_side=100)
    assert image.size == original_wh == (2001, 1001)


def stored_with_orientation(orientation: int, fmt: str = "PNG") -> bytes:
    """40x20 stored pixels, blue, with a red 10x10 block at the stored top-left."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes())


@pytest.mark.parametrize(
    ("orientation", "size", "red_corner"),
    [
        (0, (40, 20), "top-left"),  # case: invalid value 0 is ignored
        (1, (40, 20), "top-left"),  # case: upright
        (2, (40, 20), "top-right"),  # case: mirrored
        (3, (40, 20), "bottom-right"),  # case: upside down
        (4, (40, 20), "bottom-left"),  # case: mirrored vertically
        (5, (20, 40), "top-left"),  # case: transposed
        (6, (20, 40), "top-right"),  # case: turned 90 degrees clockwise
        (7, (20, 40), "bottom-right"),  # case: transversed
        (8, (20, 40), "bottom-left"),  # case: turned 90 degrees anticlockwise
        (9, (40, 20), "top-left"),  # case: out of range value is ignored
    ],
)
def test_every_exif_orientation_shows_the_photo_upright(
    orientation: int, size: tuple[int, int], red_corner: str
) -> None:
    data = stored_with_orientation(orientation)
    image, original_wh = decode_image(data, max_pixels=LIMIT)
    assert image.size == original_wh == size
    width, height = size
    corners = {
        "top-left": (2, 2),
        "top-right": (width - 3, 2),
        "bottom-left": (2, height - 3),
        "bottom-right": (width - 3, height - 3),
    }
    for name, xy in corners.items():
        assert image.getpixel(xy) == (RED if name == red_corner else BLUE), name


def test_a_cut_exif_block_is_ignored_and_the_photo_still_loads() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010E] = "x" * 60  # a description long enough to be stored apart
    image = Image.new("RGB", (40, 20), BLUE)
    data = encode(image, "JPEG", exif=exif.tobytes()[:-30])
    with pytest.warns(UserWarning, match="Truncated File Read"):  # Pillow's
        loaded = load_image(data, max_pixels=LIMIT)
    assert loaded.size == (40, 20)  # orientation unreadable: left as stored
    assert np.abs(np.subtract(loaded.getpixel((20, 10)), BLUE)).max() <= 8


def png_with_transparent_colour(mode: str, colour, other) -> bytes:
    image = Image.new(mode, (8, 8), other)
    image.paste(colour, (0, 0, 4, 8))  # left half in the transparent colour
    return encode(image, "PNG", transparency=colour)


@pytest.mark.parametrize(
    ("data", "left", "right"),
    [
        (png_with_transparent_colour("RGB", RED, BLUE), WHITE, BLUE),  # case: rgb
        (png_with_transparent_colour("L", 7, 90), WHITE, (90, 90, 90)),  # case: gray
    ],
    ids=["rgb", "gray"],
)
def test_a_transparent_colour_becomes_white(data: bytes, left, right) -> None:
    image = load_image(data, max_pixels=LIMIT)
    assert (image.getpixel((1, 1)), image.getpixel((6, 1))) == (left, right)


def palette_with_alpha() -> Image.Image:
    image = Image.new("PA", (2, 1))
    image.putpalette([*RED, *BLUE] + [0] * 762)
    image.putpixel((0, 0), (0, 128))  # red at half alpha
    image.putpixel((1, 0), (1, 255))  # opaque blue
    return image


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGBa", (2, 1), (128, 0, 0, 128)), (255, 127, 127)),  # case: RGBa
        (Image.new("La", (2, 1), (64, 128)), (191, 191, 191)),  # case: La
        (palette_with_alpha(), (255, 127, 127)),  # case: PA
    ],
)
def test_premultiplied_and_palette_alpha_composite_on_white(image, expected) -> None:
    assert to_rgb(image).getpixel((0, 0)) == expected


def gray_levels(mode: str, values) -> list[int]:
    dtype = np.float32 if mode == "F" else np.int32
    image = Image.fromarray(np.asarray([values], dtype=dtype), mode=mode)
    return np.asarray(to_rgb(image))[0, :, 0].astype(int).tolist()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("F", [0.0, 0.6, 1.0], [0, 153, 255]),  # case: float 0..1 times 255
        ("F", [0.5, 0.5], [128, 128]),  # case: flat float in 0..1 stays mid gray
        ("F", [0.0, 1.0, 2.0], [0, 1, 2]),  # case: float in 0..255 = 8-bit levels
        ("I", [10, 100, 255], [10, 100, 255]),  # case: int in 0..255 kept as is
        ("I", [10, 174, 256], [0, 170, 255]),  # case: 256 stretches min..max
        ("I", [0, 200, 300], [0, 170, 255]),  # case: wide int stretched
        ("I", [1000, 1000], [0, 0]),  # case: flat image above 255 is black
        ("F", [-1.0, 1.0, NAN, INF, -INF], [0, 255, 128, 128, 128]),  # case: non-finite
        ("F", [NAN, -0.5, 0.5], [128, 0, 255]),  # case: NaN is 0 inside the range
        ("F", [NAN, 1000.0, 2000.0], [0, 128, 255]),  # case: NaN widens the range
        ("F", [NAN, NAN], [0, 0]),  # case: nothing finite
    ],
)
def test_high_depth_gray_levels(mode: str, values, expected: list[int]) -> None:
    assert gray_levels(mode, values) == expected
