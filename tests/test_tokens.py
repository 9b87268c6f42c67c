from __future__ import annotations

import pytest

from core.geometry import box_to_pixels
from core.tokens import parse_objects, strip_tokens
from tests.recorded import SHOE_DETECT, WHEELS_BOXES_PX, WHEELS_SEGMENT

L = "<loc0100><loc0200><loc0300><loc0400>"  # y1=100 x1=200 y2=300 x2=400
L2 = "<loc0500><loc0600><loc0700><loc0800>"
S = "".join(f"<seg{i:03d}>" for i in range(16))
S2 = "".join(f"<seg{127 - i:03d}>" for i in range(16))
BOX = (200 / 1024, 100 / 1024, 400 / 1024, 300 / 1024)
BOX2 = (600 / 1024, 500 / 1024, 800 / 1024, 700 / 1024)
SEGS = tuple(range(16))
SEGS2 = tuple(127 - i for i in range(16))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),  # empty answer
        ("no objects here", []),  # text only
        (f"{L} cat", [("cat", BOX, None)]),  # one box
        (f"{L}cat", [("cat", BOX, None)]),  # no space before label
        (f"{L}", [(None, BOX, None)]),  # no label
        (f"{L} {S} cat", [("cat", BOX, SEGS)]),  # box + mask + label
        (f"{L}{S}cat", [("cat", BOX, SEGS)]),  # no spaces at all
        (f"{L} {S}", [(None, BOX, SEGS)]),  # segment cow style: no label
        (
            "<loc0100> <loc0200> <loc0300> <loc0400> " + " ".join(S.split("><")),
            [(None, BOX, None)],
        ),  # spaces between locs; segs split oddly so the mask is malformed
        (f"{L} cat ; {L2} dog", [("cat", BOX, None), ("dog", BOX2, None)]),  # two
        (f"{L} cat;{L2} dog", [("cat", BOX, None), ("dog", BOX2, None)]),  # tight sep
        (f"{L} {S} a b ; {L2} {S2} c", [("a b", BOX, SEGS), ("c", BOX2, SEGS2)]),
        (f"{L} cat ; junk words ; {L2} dog", [("cat", BOX, None), ("dog", BOX2, None)]),
        (f"hello {L} cat", [("cat", BOX, None)]),  # junk before the first object
        (f"{L} cat ; {L2} {S[:40]}", [("cat", BOX, None), (None, BOX2, None)]),
        (f"{L} cat ; <loc0500><loc0600>", [("cat", BOX, None)]),  # cut-off box
        ("<loc0300><loc0200><loc0100><loc0400> x", []),  # y2 < y1: empty box
        ("<loc0100><loc0400><loc0300><loc0400> x", []),  # x2 == x1: empty box
        (f"{L}  big   red  car  ", [("big red car", BOX, None)]),  # whitespace
        (f"{L} cat\n{L2} dog", [("cat", BOX, None), ("dog", BOX2, None)]),  # newline
        (f"{L} Straße ; {L2} 猫", [("Straße", BOX, None), ("猫", BOX2, None)]),
        (f"{L} cat<eos>", [("cat", BOX, None)]),  # stray special token after label
        (f"{S} {L} cat", [("cat", BOX, None)]),  # seg tokens before the box: ignored
        ("<loc10000><loc0200><loc0300><loc0400> x", []),  # five-digit loc: malformed
        ("<loc0100><loc0200><loc0100><loc0400> x", []),  # y2 == y1: empty box
        (
            f"<loc0100><loc0200><loc0100><loc0400> x ; {L2} dog",
            [("dog", BOX2, None)],
        ),  # an empty box is skipped, the objects after it are kept
        (f"{L} {S[:-8]}<seg128> cat", [("cat", BOX, None)]),  # seg 128: no mask
        (f"{L} {S[:-8]}<seg127> cat", [("cat", BOX, (*SEGS[:-1], 127))]),  # max seg
    ],
)
def test_parse_objects(text, expected):
    objects = parse_objects(text)
    assert [(o.label, o.box, o.seg_indices) for o in objects] == expected


def test_real_detect_output():
    (shoe,) = parse_objects(SHOE_DETECT)
    assert shoe.label == "shoe"
    assert shoe.seg_indices is None
    assert shoe.box == (309 / 1024, 51 / 1024, 646 / 1024, 708 / 1024)


def test_real_segment_output_boxes_in_original_pixels():
    objects = parse_objects(WHEELS_SEGMENT)
    assert [o.label for o in objects] == ["right wheel", "right wheel"]
    assert [box_to_pixels(o.box, (640, 480)) for o in objects] == WHEELS_BOXES_PX
    assert objects[0].seg_indices[:4] == (92, 4, 44, 92)
    assert objects[1].seg_indices[-3:] == (41, 44, 73)
    assert all(len(o.seg_indices) == 16 for o in objects)


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        (f"{L} {S} cat", "cat"),  # grounded answer
        ("a dog on a bike", "a dog on a bike"),  # caption
        ("  two\n lines ", "two lines"),  # whitespace collapsed
        ("", ""),  # empty
    ],
)
def test_strip_tokens(text, stripped):
    assert strip_tokens(text) == stripped
