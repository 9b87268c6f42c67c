"""core.followups: suggestions that refine the request that ran, titles, tags."""

from __future__ import annotations

import pytest

from core.followups import MAX_FOLLOW_UPS, follow_ups, tags_for, title_for
from core.intent import parse_intent
from core.types import Action

# (conversation, objects found, suggestions) # case
SUGGESTIONS = [
    (
        ("detect the red squares",),
        3,
        ["now as masks", "only 1 and 3", "also the circle", "zoom into the top left"],
    ),  # three objects: pick some
    (
        ("segment left wheel",),
        1,
        [
            "now as boxes",
            "what about the right wheel?",
            "also the car",
            "zoom into the top left",
        ],
    ),  # a side: the other one
    (
        ("detect the dog", "also the cat"),
        2,
        ["now as masks", "also the leash", "zoom into the top left", "undo"],
    ),  # a refinement can be undone
    (
        ("detect the dog", "zoom into the top left"),
        0,
        ["now as masks", "also the leash", "the whole photo", "undo"],
    ),  # zoomed in: back out
    (("caption",), 0, ["in German", "describe this photo", "detect the people"]),
    (("read the text",), 0, ["what's in this picture?", "describe this photo"]),
]


def last_intent(texts: tuple[str, ...]):
    intent = None
    for text in texts:
        intent = parse_intent(text, previous=intent)
    return intent


@pytest.mark.parametrize(("texts", "found", "expected"), SUGGESTIONS)
def test_follow_ups_refine_the_request(texts, found, expected) -> None:
    intent = last_intent(texts)
    phrases = follow_ups(intent, found)
    assert phrases == expected
    assert len(phrases) <= MAX_FOLLOW_UPS
    for phrase in phrases:  # each one runs, redraws or undoes: never asks back
        action = parse_intent(phrase, previous=intent).action
        assert action in (Action.RUN, Action.VIEW, Action.UNDO), phrase


def test_without_a_request_the_suggestions_start_one() -> None:
    for phrase in follow_ups(None):
        assert parse_intent(phrase).action == Action.RUN, phrase


@pytest.mark.parametrize(
    ("text", "title", "tag"),
    [
        ("detect the red squares", "Red square detection", "Object Detection"),
        (
            "segment the cat and the dog",
            "Cat and dog segmentation",
            "Image Segmentation",
        ),
        ("caption", "Photo caption", "Image Captioning"),
        ("what color is the car?", "Photo question", "Visual Question Answering"),
        ("help", "Photo analysis", None),  # not a model request
    ],
)
def test_title_and_tags(text: str, title: str, tag: str | None) -> None:
    intent = parse_intent(text)
    assert title_for(intent) == title
    tags = tags_for(intent)
    assert tags[:2] == ["Technology", "Computer Vision"]
    assert (tags[2:] or [None]) == [tag]
