"""What the chat says back when a request cannot run yet, word for word.

The clarifying message IS the product here: it tells the user what to type
next. Each row is a short conversation; the last message's reply is checked
exactly. Edge cases that run are in test_intent_edges.py.
"""

from __future__ import annotations

import pytest

from core.intent.messages import (
    MSG_ADD_WHAT,
    MSG_ANSWER_WHAT,
    MSG_NO_PREVIOUS,
    MSG_NOTHING_LEFT,
    MSG_REGION_EMPTY,
    MSG_REGION_WHAT,
    MSG_UNCLEAR,
    MSG_VAGUE,
)
from core.intent.parse import parse_intent
from core.types import Intent, Region
from tests.support.intents import reply_to

# (conversation, the exact clarifying message of its last turn)
CLARIFY = [
    (("",), MSG_UNCLEAR),  # nothing typed
    (("ok thanks",), MSG_UNCLEAR),  # filler words only
    (("also the bike",), MSG_NO_PREVIOUS),  # nothing to add to
    (("boxes",), MSG_NO_PREVIOUS),  # nothing to switch
    (("again",), MSG_NO_PREVIOUS),  # nothing to repeat
    (("segment",), "Segment what? For example “segment the cat”."),
    (("detect",), "Detect what? For example “detect the cat”."),
    (("detect it",), MSG_NO_PREVIOUS),  # a pronoun with nothing before
    (("caption", "boxes"), "Boxes of what? Name the things, e.g. “detect dog ; bike”."),
    (
        ("caption", "masks"),
        "Masks of what? Name the things, e.g. “segment dog ; bike”.",
    ),
    (
        ("detect dog ; bike", "remove"),
        "Remove what? The current request is: dog, bike.",
    ),
    (
        ("detect dog ; bike", "remove the cat"),
        "“cat” is not in the current request (dog, bike). Say e.g. “remove bike”.",
    ),
    (("detect dog ; bike", "remove the dog ; bike"), MSG_NOTHING_LEFT),
    (("caption", "remove the dog"), MSG_NO_PREVIOUS),  # nothing grounded to edit
    (("detect dog ; bike", "only the"), "Which one? Say e.g. “only the left dog”."),
    (("caption", "only the left one"), MSG_NO_PREVIOUS),
    (
        ("detect dog ; bike", "only the left one"),
        "Which one do you mean: “only the left dog” or “only the left bike”?",
    ),
    (("detect dog", "only detect everything"), MSG_VAGUE),
    (("caption", "only detect"), "Detect what? For example “detect the cat”."),
    (("detect dog", "also everything"), MSG_VAGUE),
    (("detect anything",), MSG_VAGUE),
    (
        ("caption", "also the bike"),
        "Boxes or masks? Say “detect bike” or “segment bike”.",
    ),
    (
        ("detect dog", "in German"),
        "A language works with captions, descriptions and questions, e.g. "
        "“caption in German”. Box and mask labels are always English.",
    ),
    (
        ("in French",),
        "A language works with captions, descriptions and questions, e.g. "
        "“caption in French”. Box and mask labels are always English.",
    ),
    (("dog",), "Do you want boxes (“detect dog”) or masks (“segment dog”)?"),
    (
        ("dog and cat",),
        "Do you want boxes (“detect dog ; cat”) or masks (“segment dog ; cat”)?",
    ),
    (
        ("detect dog", "cat and bike"),
        "Do you want boxes (“detect cat ; bike”) or masks (“segment cat ; bike”) "
        "or “also cat ; bike” to add it?",
    ),
    (("cats, dogs, bikes and cars",), MSG_UNCLEAR),  # more than 3 names: unclear
    (
        ("dog, cat and bike",),
        "Do you want boxes (“detect dog ; cat ; bike”) or masks "
        "(“segment dog ; cat ; bike”)?",
    ),  # three names: still asked
    (
        ("le chien noir",),
        "Do you want boxes (“detect le chien noir”) or masks "
        "(“segment le chien noir”)?",
    ),  # French at 76 %: under the 90 % that makes a statement a question
    (("in this photo",), MSG_UNCLEAR),  # only words about the photo
    (("hmm yeah",), MSG_UNCLEAR),  # filler words only
    (("detect dog", "only what"), MSG_UNCLEAR),
    (("detect dog", "also the"), MSG_UNCLEAR),  # nothing named
    (
        ("detect dog ; bike ; car", "remove the cat"),
        "“cat” is not in the current request (dog, bike, car). Say e.g. “remove car”.",
    ),  # the example names the last object
    (
        ("caption", "also the bike and the car"),
        "Boxes or masks? Say “detect bike ; car” or “segment bike ; car”.",
    ),
    (("answer it is a dog",), MSG_UNCLEAR),  # "it" is a pronoun, not Italian
    (("find the dog you see",), MSG_UNCLEAR),  # "you": a sentence, not a name
    (("detect dog", "only find what is there"), MSG_UNCLEAR),  # a question
    (
        ("big old rusty bent red bikes",),
        "Do you want boxes (“detect big old rusty bent red bike”) or masks "
        "(“segment big old rusty bent red bike”)?",
    ),  # six words: still a name
    (("very big old rusty bent red bikes",), MSG_UNCLEAR),  # seven: a sentence
    (
        ("detect cold very big old rusty bent red shiny dirty small wet dark bikes",),
        MSG_UNCLEAR,
    ),  # thirteen words after the verb: too long for a name
    (("zoom into the top left",), MSG_REGION_WHAT),
    (("region 100,200 to 100,700: detect the cat",), MSG_REGION_EMPTY),  # no width
    (("detect dog", "region 100,200 to 600,200"), MSG_REGION_EMPTY),  # no height
    (("detect dog", "also"), MSG_ADD_WHAT),  # it asked about boxes of "also"
    (("detect dog", "and too"), MSG_ADD_WHAT),
    (("also",), MSG_ADD_WHAT),
    (("segment the",), "Segment what? For example “segment the cat”."),
    (("detect those",), "Detect what? For example “detect the cat”."),
    (("detect dog", "answer it in German"), MSG_ANSWER_WHAT),  # nothing asked
    (("answer it",), MSG_ANSWER_WHAT),
    (("caption", "reply to that"), MSG_ANSWER_WHAT),
]


@pytest.mark.parametrize(("texts", "message"), CLARIFY)
def test_clarifying_messages(texts: tuple[str, ...], message: str) -> None:
    intent = reply_to(*texts)
    assert (intent.action, intent.prompt, intent.message) == ("clarify", "", message)
    assert intent.task == "free" and not intent.follows_previous
    assert intent.region is None


def test_a_region_after_a_request_that_did_not_run_asks_what_to_look_for() -> None:
    not_run = Intent(task="free", prompt="", action="clarify", message="x")
    intent = parse_intent("zoom into the top left", not_run)
    assert (intent.action, intent.message) == ("clarify", MSG_REGION_WHAT)


def test_a_previous_request_that_did_not_run_is_not_refined() -> None:
    not_run = Intent(task="free", prompt="", action="clarify", message="x")
    intent = parse_intent("also the bike", not_run)
    assert (intent.action, intent.message) == ("clarify", MSG_NO_PREVIOUS)


def test_draw_a_region_opens_the_picker() -> None:
    for text in ("draw a region", "let me select an area", "pick the box"):
        assert parse_intent(text) == Intent(
            task="free", prompt="", action="pick_region"
        ), text
    assert parse_intent("draw a box around the car").prompt == "detect car"


def test_region_words_and_the_request_beside_them() -> None:
    top_left = Region("fraction", (0.0, 0.0, 0.5, 0.5))
    previous = parse_intent("detect dog")
    zoomed = parse_intent("zoom into the top left", previous)
    assert (zoomed.prompt, zoomed.region) == ("detect dog", top_left)
    assert (zoomed.refinement, zoomed.follows_previous) == ("region", True)
    also = parse_intent("zoom into the top left and also the cat", previous)
    assert (also.prompt, also.region, also.refinement) == (
        "detect dog ; cat",
        top_left,
        "add",
    )
    capital = parse_intent("zoom into the top left And segment the bottles")
    assert (capital.prompt, capital.region) == ("segment bottle", top_left)
    assert capital.refinement is None  # a new request, not "and" = add
    help_there = parse_intent("zoom into the top left and help")
    assert (help_there.action, help_there.region) == ("help", None)
