"""Region prompts: words -> Region, the model sees the crop, results map back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.conversation import intent_from_dict, intent_to_dict
from core.errors import UserInputError
from core.geometry import box_to_pixels
from core.intent import parse_intent
from core.intent.region import CLEAR, region_to_pixels, split_region
from core.pipeline import analyze
from core.tiling import analyze_tiled
from core.tokens import LOC_BINS
from core.types import Region
from tests.support.fakes import FakeModel

TOP_LEFT = Region("fraction", (0.0, 0.0, 0.5, 0.5))
BOTTOM_RIGHT = Region("fraction", (0.5, 0.5, 1.0, 1.0))
LEFT_HALF = Region("fraction", (0.0, 0.0, 0.5, 1.0))
SEGS = "".join(f"<seg{v:03d}>" for v in range(16))


@pytest.mark.parametrize(
    ("text", "region", "rest"),
    [
        ("zoom into the top left", TOP_LEFT, ""),
        (
            "Zoom in on the bottom right corner",
            Region("fraction", (0.5, 0.5, 1, 1)),
            "",
        ),
        ("crop to the center", Region("fraction", (0.25, 0.25, 0.75, 0.75)), ""),
        ("focus on the left half of the photo", LEFT_HALF, ""),
        (
            "zoom into the top right and detect bottles",
            Region("fraction", (0.5, 0, 1, 0.5)),
            "and detect bottles",
        ),
        (
            "region 100,200 to 600,700: detect car",
            Region("px", (100, 200, 600, 700)),
            "detect car",
        ),
        (
            "segment the dog in the region (600, 700) - (100, 200)",
            Region("px", (100, 200, 600, 700)),
            "segment the dog",
        ),  # corners in any order
        ("zoom out", CLEAR, ""),
        ("back to the whole photo", CLEAR, ""),
        ("detect the cup in the top left", None, "detect the cup in the top left"),
        ("segment the left wheel", None, "segment the left wheel"),
        ("detect 2 cats and 3 dogs", None, "detect 2 cats and 3 dogs"),  # numbers
        ("region 5,5 to 5,90", None, "region 5,5 to 5,90"),  # no width
        ("detect bottles. zoom into the top left", TOP_LEFT, "detect bottles"),
        ("zoom into the top left: find X", TOP_LEFT, "find X"),
        (
            "zoom into the top left and detect  bottles",
            TOP_LEFT,
            "and detect bottles",
        ),  # spaces collapsed
        ("region 100,5 to 100,90", None, "region 100,5 to 100,90"),  # no width
        ("region 100,200 to 600,200", None, "region 100,200 to 600,200"),  # no height
    ],
)
def test_split_region(text, region, rest) -> None:
    assert split_region(text) == (region, rest)


@pytest.mark.parametrize(
    ("region", "size_wh", "box"),
    [
        (TOP_LEFT, (640, 480), (0, 0, 320, 240)),
        (Region("px", (100, 200, 600, 700)), (640, 480), (100, 200, 600, 480)),
        (Region("px", (10.4, 0, 20.6, 9)), (640, 480), (10, 0, 21, 9)),
        (BOTTOM_RIGHT, (640, 480), (320, 240, 640, 480)),
        (Region("px", (10, 10, 11, 20)), (640, 480), (10, 10, 11, 20)),  # 1 px wide
        (Region("px", (10, 10, 20, 11)), (640, 480), (10, 10, 20, 11)),  # 1 px high
    ],
)
def test_region_to_pixels_clips_to_the_photo(region, size_wh, box) -> None:
    assert region_to_pixels(region, size_wh) == box


@pytest.mark.parametrize(
    "box",
    [
        (0, 10, 0.4, 20),  # rounds to no width at the left edge
        (700, 10, 800, 20),  # right of it
        (10, 0, 20, 0.4),  # rounds to no height at the top edge
        (10, 500, 20, 600),  # below
        (10.2, 10, 10.4, 20),  # rounds to no width
    ],
)
def test_region_to_pixels_refuses_a_region_off_the_photo(box) -> None:
    with pytest.raises(ValueError) as error:
        region_to_pixels(Region("px", box), (640, 480))
    assert str(error.value) == f"the region {box} lies outside the 640x480 photo"


def test_a_region_off_the_photo_is_refused_clearly() -> None:
    intent = parse_intent("region 900,900 to 1000,1000: detect car")
    with pytest.raises(UserInputError, match="not on this photo"):
        analyze(Image.new("RGB", (640, 480)), intent, FakeModel())


def test_refinements_stay_in_the_region_until_zoom_out() -> None:
    first = parse_intent("segment the cat")
    zoomed = parse_intent("zoom into the top left", first)
    also = parse_intent("also the dog", zoomed)
    boxes = parse_intent("now as boxes", also)
    out = parse_intent("zoom out", boxes)
    assert (zoomed.prompt, zoomed.region) == ("segment cat", TOP_LEFT)
    assert (also.prompt, also.region) == ("segment cat ; dog", TOP_LEFT)
    assert (boxes.prompt, boxes.region) == ("detect cat ; dog", TOP_LEFT)
    assert (out.prompt, out.region) == ("detect cat ; dog", None)
    assert parse_intent("detect bike", zoomed).region is None  # a new request


def test_a_region_alone_without_a_request_asks_what_to_look_for() -> None:
    intent = parse_intent("zoom into the top left")
    assert intent.action == "clarify" and "look for there" in intent.message


def test_the_model_sees_the_crop_and_results_land_on_the_photo() -> None:
    image = Image.new("RGB", (640, 480))
    bins = (256, 512, 768, 1023)  # y1 x1 y2 x2 in the crop
    answer = "".join(f"<loc{b:04d}>" for b in bins) + f" {SEGS} cat"
    model = FakeModel().enqueue(answer)
    intent = parse_intent("region 100,200 to 420,440: segment the cat")
    result = analyze(image, intent, model)
    assert model.calls[0]["image_size"] == (320, 240)  # only the region
    (cat,) = result.detections
    norm = (
        bins[1] / LOC_BINS,
        bins[0] / LOC_BINS,
        bins[3] / LOC_BINS,
        bins[2] / LOC_BINS,
    )
    x1, y1, x2, y2 = box_to_pixels(norm, (320, 240))
    assert cat.box_px == (x1 + 100, y1 + 200, x2 + 100, y2 + 200)
    assert cat.mask.shape == (480, 640)
    ys, xs = np.nonzero(cat.mask)
    assert xs.min() >= 100 + x1 and ys.min() >= 200 + y1
    assert xs.max() < 100 + x2 and ys.max() < 200 + y2
    assert result.image_size_wh == (640, 480)


def test_tiles_of_a_region_tile_the_crop() -> None:
    image = Image.new("RGB", (2000, 1000))
    intent = parse_intent("zoom into the left half and detect cars")
    model = FakeModel().enqueue("").enqueue("").enqueue("")
    analyze_tiled(image, intent, model, (2, 1))
    sizes = [call["image_size"] for call in model.calls]
    assert sizes[0] == (1000, 1000)  # the region, whole
    assert all(w < 1000 and h == 1000 for w, h in sizes[1:])  # its two tiles


def test_a_region_survives_the_saved_state() -> None:
    intent = parse_intent("zoom into the top left and detect bottles")
    assert intent_from_dict(intent_to_dict(intent)) == intent


@pytest.mark.parametrize(
    "region", [{"unit": "inches", "box": [0, 0, 1, 1]}, {"box": [1]}, "top left"]
)
def test_a_malformed_saved_region_is_a_value_error(region) -> None:
    data = intent_to_dict(parse_intent("detect car")) | {"region": region}
    with pytest.raises(ValueError, match="region"):
        intent_from_dict(data)
