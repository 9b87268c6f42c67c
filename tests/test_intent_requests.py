"""parse_requests (one intent per named image) and redraws by object number."""

from __future__ import annotations

import pytest

from core.conversation import intent_from_dict, intent_to_dict
from core.intent import parse_intent, parse_requests
from core.types import ViewChange

# (text, [(prompt, image_ref), ...]); one clarify row: [("clarify", None)].
SEVERAL_IMAGES = [
    (
        "segment the dog in image 1 and the cat in image 2",
        [("segment dog", "1"), ("segment cat", "2")],
    ),  # verb borrowed by the second part
    (
        "segment the cat in image 1 and image 2",
        [("segment cat", "1"), ("segment cat", "2")],
    ),  # image-only part repeats the request
    (
        "segment the cat in images 1 and 2",
        [("segment cat", "1"), ("segment cat", "2")],
    ),  # plural noun, two numbers
    (
        "detect the dogs in photos 1, 2 and 3",
        [("detect dog", "1"), ("detect dog", "2"), ("detect dog", "3")],
    ),  # list of three
    (
        "how many dogs are in image 1 and image 2?",
        [
            ("answer en how many dogs are in the image?", "1"),
            ("answer en how many dogs are in the image?", "2"),
        ],
    ),  # same question twice
    (
        "on image 1 segment the dog, on image 2 detect the car",
        [("segment dog", "1"), ("detect car", "2")],
    ),  # leading references
    (
        "- on image 1 segment the dog, on image 2 detect the car",
        [("segment dog", "1"), ("detect car", "2")],
    ),  # a list item: the dash before the first reference
    (
        "detect dog on image 1 and caption image 2",
        [("detect dog", "1"), ("caption en", "2")],
    ),  # different tasks
    (
        "find the dog in the first photo and the cat in the second photo",
        [("detect dog", "1"), ("detect cat", "2")],
    ),  # ordinals
    (
        "segment the dog in cat.jpg and the car in car.png",
        [("segment dog", "cat.jpg"), ("segment car", "car.png")],
    ),  # file names
    (
        "segment the person holding a cup in image 1 and the dog in image 2",
        [("segment person holding a cup", "1"), ("segment dog", "2")],
    ),  # referring expression per image
    ("segment the cat on image 2", [("segment cat", "2")]),  # one image: unchanged
    ("segment the cat", [("segment cat", None)]),  # no image
    ("compare image 1 and image 2", [("clarify", None)]),  # nothing to run
    (
        "segment the dog in image 1, the cat in image 2 and image 3",
        [("segment dog", "1"), ("segment cat", "2"), ("segment cat", "3")],
    ),  # an image alone takes the request just before it
    (
        "image 1 and segment the cat in image 2 and the dog in image 3",
        [("segment cat", "1"), ("segment cat", "2"), ("segment dog", "3")],
    ),  # ... or the first one when it comes first
    (
        "how many dogs are in image 1 and how many cats are in image 2?",
        [
            ("answer en how many dogs are in the image?", "1"),
            ("answer en how many cats are in the image?", "2"),
        ],
    ),  # the question mark once, on each part
    ("image 1 and image 2", [("clarify", None)]),  # no request to repeat
]


@pytest.mark.parametrize(("text", "expected"), SEVERAL_IMAGES)
def test_parse_requests(text: str, expected: list[tuple[str, str | None]]) -> None:
    intents = parse_requests(text)
    got = [(i.prompt if i.action == "run" else i.action, i.image_ref) for i in intents]
    assert got == expected


def test_parse_requests_refines_the_previous_request() -> None:
    previous = parse_intent("segment the cat")
    intents = parse_requests("also the dog in image 1 and image 2", previous)
    assert [(i.prompt, i.image_ref, i.refinement) for i in intents] == [
        ("segment cat ; dog", "1", "add"),
        ("segment cat ; dog", "2", "add"),
    ]


SEGMENTED = parse_intent("segment the cat ; dog")
DETECTED = parse_intent("detect cat ; dog")

# (text, previous, expected ViewChange or None when the model must run)
VIEWS = [
    ("only 1 and 3", SEGMENTED, ViewChange(keep=(1, 3))),  # keep two
    ("just #2", SEGMENTED, ViewChange(keep=(2,))),  # hash
    ("keep 1, 3", DETECTED, ViewChange(keep=(1, 3))),  # keep list
    ("show only 2", SEGMENTED, ViewChange(keep=(2,))),  # show only
    ("only 1-3", SEGMENTED, ViewChange(keep=(1, 2, 3))),  # range
    ("remove 2", SEGMENTED, ViewChange(drop=(2,))),  # remove
    ("hide object 2", DETECTED, ViewChange(drop=(2,))),  # hide object N
    ("remove objects 2 and 4", SEGMENTED, ViewChange(drop=(2, 4))),  # objects list
    ("show all", SEGMENTED, ViewChange(show_all=True)),  # back
    ("show them all again", DETECTED, ViewChange(show_all=True)),  # again
    ("hide the boxes", SEGMENTED, ViewChange(layers=(("boxes", False),))),  # boxes
    ("show labels", SEGMENTED, ViewChange(layers=(("labels", True),))),  # labels
    ("Hide the boxes please", DETECTED, ViewChange(layers=(("boxes", False),))),
    (
        "hide labels and boxes",
        SEGMENTED,
        ViewChange(layers=(("labels", False), ("boxes", False))),
    ),  # two layers
    ("no masks", SEGMENTED, ViewChange(layers=(("masks", False),))),  # masks off
    ("boxes off", DETECTED, ViewChange(layers=(("boxes", False),))),  # suffix
    ("show the masks", SEGMENTED, ViewChange(layers=(("masks", True),))),  # on again
    ("show the masks", DETECTED, None),  # masks of boxes: segment (model runs)
    ("hide the dog", SEGMENTED, None),  # a name: the model runs without it
    ("only the dog", SEGMENTED, None),  # a name
    ("find 3 dogs", None, None),  # a number in a request
]


@pytest.mark.parametrize(("text", "previous", "view"), VIEWS)
def test_redraw_by_number(text, previous, view) -> None:
    intent = parse_intent(text, previous)
    if view is None:
        assert intent.action != "view"
        return
    assert (intent.action, intent.prompt, intent.view) == ("view", "", view)


def test_view_names_its_image_and_survives_a_json_trip() -> None:
    intent = parse_intent("only 2 on image 1", SEGMENTED)
    assert (intent.action, intent.image_ref, intent.view) == (
        "view",
        "1",
        ViewChange(keep=(2,)),
    )
    toggles = parse_intent("hide the boxes", SEGMENTED)
    assert intent_from_dict(intent_to_dict(toggles)) == toggles
    assert intent_from_dict(intent_to_dict(intent)) == intent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("also the cat", [("detect dog ; cat", None, "add")]),  # one request
        (
            "also the cat in image 1 and image 2",
            [("detect dog ; cat", "1", "add"), ("detect dog ; cat", "2", "add")],
        ),
        (
            "image 1 and image 2",
            [("detect dog", "1", "repeat"), ("detect dog", "2", "repeat")],
        ),  # was "detect dog ; image 2" on image 1 only
        (
            "use image 1 and image 2",
            [("detect dog", "1", "repeat"), ("detect dog", "2", "repeat")],
        ),  # was "detect dog ; image 2" on image 1 only
        (
            "again in image 1 and image 2",
            [("detect dog", "1", "repeat"), ("detect dog", "2", "repeat")],
        ),
    ],
)
def test_several_images_refine_the_previous_request(text, expected) -> None:
    previous = parse_intent("detect dog")
    intents = parse_requests(text, previous)
    assert [(i.prompt, i.image_ref, i.refinement) for i in intents] == expected
    assert all(i.follows_previous for i in intents)
