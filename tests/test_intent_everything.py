"""Composed requests in chat text (core.intent.everything) and the noun
extractor that turns a caption into detect targets (core.intent.nouns)."""

from __future__ import annotations

import pytest

from core.intent import parse_intent, parse_requests
from core.intent.nouns import caption_nouns
from core.intent.text import run_intent
from core.types import Action

DOGS = run_intent("detect", ("dog", "cat"))


@pytest.mark.parametrize(
    ("text", "task", "prompt", "targets", "then", "per_object"),
    [
        ("detect everything", "caption", "caption en", (), "detect", None),  # issue
        ("Detect everything!", "caption", "caption en", (), "detect", None),  # case
        ("label everything", "caption", "caption en", (), "detect", None),  # label
        ("label everything in this photo", "caption", "caption en", (), "detect", None),
        (
            "what is in this photo and where?",
            "caption",
            "caption en",
            (),
            "detect",
            None,
        ),
        (
            "What's in the picture and where are they?",
            "caption",
            "caption en",
            (),
            "detect",
            None,
        ),
        (
            "what objects are in this photo and where?",
            "caption",
            "caption en",
            (),
            "detect",
            None,
        ),
        ("please find all the objects", "caption", "caption en", (), "detect", None),
        ("detect all objects as masks", "caption", "caption en", (), "segment", None),
        ("segment everything", "caption", "caption en", (), "segment", None),  # masks
        (
            "outline every object in the image",
            "caption",
            "caption en",
            (),
            "segment",
            None,
        ),
        (
            "describe each object",
            "caption",
            "caption en",
            (),
            "detect",
            "caption",
        ),  # none before
        (
            "caption every box",
            "caption",
            "caption en",
            (),
            "detect",
            "caption",
        ),  # none before
        (
            "caption each dog",
            "detect",
            "detect dog",
            ("dog",),
            None,
            "caption",
        ),  # named
        (
            "describe all the cars individually",
            "detect",
            "detect car",
            ("car",),
            None,
            "caption",
        ),
        ("detect dog", "detect", "detect dog", ("dog",), None, None),  # unchanged
        ("describe this image", "describe", "describe en", (), None, None),  # unchanged
        (
            "what is in this photo?",
            "caption",
            "caption en",
            (),
            None,
            None,
        ),  # no "where"
    ],
)
def test_composed_phrasings(text, task, prompt, targets, then, per_object) -> None:
    intent = parse_intent(text)
    assert intent.action is Action.RUN, intent.message
    assert (intent.task, intent.prompt, intent.targets) == (task, prompt, targets)
    assert (intent.then, intent.per_object) == (then, per_object)


@pytest.mark.parametrize(
    ("text", "previous", "prompt", "per_object"),
    [
        ("describe each object", DOGS, "detect dog ; cat", "caption"),  # last answer
        ("caption every box", DOGS, "detect dog ; cat", "caption"),  # same
        ("caption each of them", DOGS, "detect dog ; cat", "caption"),  # pronoun
        ("only the dog", DOGS, "detect dog", None),  # refinements stay as they were
        ("now as masks", DOGS, "segment dog ; cat", None),  # switch
    ],
)
def test_composed_after_an_answer(text, previous, prompt, per_object) -> None:
    intent = parse_intent(text, previous)
    assert (intent.prompt, intent.per_object, intent.then) == (prompt, per_object, None)


@pytest.mark.parametrize(
    ("caption", "nouns"),
    [
        ("a cat and a dog on a grey floor", ("cat", "dog", "floor")),  # recorded
        (
            "a dog and two cats sitting on a red couch",
            ("dog", "cat", "couch"),
        ),  # plural
        ("two people standing in front of a fire hydrant", ("person", "fire hydrant")),
        ("cars parked on the side of the road", ("car", "road")),  # no article
        ("A man riding a bike next to a building.", ("man", "bike", "building")),
        ("the image shows a cow in a field", ("cow", "field")),  # scene word skipped
        ("a close up of a plate of food", ("plate", "food")),  # "close up" skipped
        ("a dog, a dog and another dog", ("dog",)),  # deduplicated
        ("three women's handbags", ("handbag",)),  # the owner dropped
        ("it is sunny", ()),  # names nothing
        ("", ()),  # empty caption
        ("<loc0001> ;;; 123 !!", ()),  # not words
    ],
)
def test_caption_nouns(caption, nouns) -> None:
    assert caption_nouns(caption) == nouns


def test_caption_nouns_stops_at_the_limit() -> None:
    many = " and ".join(f"a {w}" for w in "cat dog cow horse bird fish bus car".split())
    assert caption_nouns(many, limit=3) == ("cat", "dog", "cow")


def test_composed_on_a_named_image() -> None:
    first, second = parse_requests("detect everything in image 1 and image 2")
    assert (first.prompt, first.then, first.image_ref) == ("caption en", "detect", "1")
    assert (second.prompt, second.then, second.image_ref) == (
        "caption en",
        "detect",
        "2",
    )
