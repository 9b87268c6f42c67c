"""What the chat says back when a request cannot run yet, word for word.

The clarifying message IS the product here: it tells the user what to type
next. Each row is a short conversation; the last message's reply is checked
exactly. Also: edge cases of parse_intent found by mutation testing
(docs/testing.md, "core/intent/").
"""

from __future__ import annotations

import pytest

from core.intent import language
from core.intent.language import detect_language, supported_codes
from core.intent.messages import (
    MSG_NO_PREVIOUS,
    MSG_NOTHING_LEFT,
    MSG_REGION_WHAT,
    MSG_UNCLEAR,
    MSG_VAGUE,
)
from core.intent.parse import parse_intent
from core.intent.vocab import LANGUAGES, singularize
from core.types import Intent, Region


def reply_to(*texts: str) -> Intent:
    """The Intent of the last text, each earlier one run as the previous."""
    previous = None
    for text in texts:
        intent = parse_intent(text, previous)
        if intent.action == "run":
            previous = intent
    return intent


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
    (("detect everything",), MSG_VAGUE),
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
    (("zoom into the top left",), MSG_REGION_WHAT),
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
    help_there = parse_intent("zoom into the top left and help")
    assert (help_there.action, help_there.region) == ("help", None)


# Image references, repeats and languages -------------------------------------

# (conversation, (action, prompt, image_ref, refinement, follows_previous))
TURNS = [
    (("detect dog", "again"), ("run", "detect dog", None, "repeat", True)),
    (("detect dog", "on image 2"), ("run", "detect dog", "2", "repeat", True)),
    (("detect dog", "same for image 2"), ("run", "detect dog", "2", "repeat", True)),
    (("image 2",), ("select", "", "2", None, False)),
    (("detect the dog in the 2nd image",), ("run", "detect dog", "2", None, False)),
    (("detect the dog in the 23rd photo",), ("run", "detect dog", "23", None, False)),
    (("detect the dog on 'cat.jpg'",), ("run", "detect dog", "cat.jpg", None, False)),
    (
        ('segment the cat on "my cat.png"',),
        ("run", "segment cat", "my cat.png", None, False),
    ),
    (("caption", "in German"), ("run", "caption de", None, "language", True)),
    (
        ("what color is it?", "in Japanese"),
        ("run", "answer ja what color is it?", None, "language", True),
    ),
    (
        ("caption", "also what color is it in German"),
        ("run", "answer de what color is it", None, None, False),
    ),
    (("so, how many dogs?",), ("run", "answer en how many dogs?", None, None, False)),
    (
        ("Answer EN how many dogs?",),
        ("run", "answer en how many dogs?", None, None, False),
    ),  # typed grammar, any case
    (("more details please",), ("run", "describe en", None, None, False)),
    (("describe in detail",), ("run", "describe en", None, None, False)),
    (("detect a b c d e f",), ("run", "detect b c d e f", None, None, False)),
    (("detect cats and dogs",), ("run", "detect cat ; dog", None, None, False)),
    (("detect cats or dogs",), ("run", "detect cat ; dog", None, None, False)),
    (("find the 'dogs'",), ("run", "detect dog", None, None, False)),
    (("detect the d\u200bog",), ("run", "detect dog", None, None, False)),  # Cf
    (("detect the do\x07g",), ("run", "detect dog", None, None, False)),  # Cc
    (("please: find the dog",), ("run", "detect dog", None, None, False)),
    (("find the dog that barks",), ("run", "detect dog that barks", None, None, False)),
    (
        ("find the cup which the man holds",),
        ("run", "detect cup which the man holds", None, None, False),
    ),
    (
        ("segment the dog wearing a hat",),
        ("run", "segment dog wearing a hat", None, None, False),
    ),
    (("find the dog holding",), ("run", "detect dog holding", None, None, False)),
]


@pytest.mark.parametrize(("texts", "expected"), TURNS)
def test_turns(texts: tuple[str, ...], expected: tuple) -> None:
    intent = reply_to(*texts)
    got = (
        intent.action,
        intent.prompt,
        intent.image_ref,
        intent.refinement,
        intent.follows_previous,
    )
    assert got == expected


# Languages --------------------------------------------------------------------

# (text, language): short, rare-language and unsure texts.
LANGUAGE_OF = [
    ("Почему?", "ru"),  # exactly 6 letters: enough to tell
    ("Warum?", "en"),  # 5 letters: too short to tell
    ("Ilang aso ang nasa larawan na ito?", "fil"),  # py3langid "tl"
    ("hmmmmm ok", "en"),  # best guess "sv" at 15 %: unsure, English
    ("¿Cuántos perros hay en la foto?", "es"),
]


@pytest.mark.parametrize(("text", "code"), LANGUAGE_OF)
def test_language_of_a_question(text: str, code: str) -> None:
    assert detect_language(text) == code


def test_a_freshly_loaded_identifier_knows_paligemmas_languages(monkeypatch) -> None:
    monkeypatch.setattr(language, "_identifier", None)  # load it again, here
    assert set(supported_codes()) == set(LANGUAGES) - {"mi"}
    assert language._identifier is not None
    for text, code in LANGUAGE_OF:
        assert detect_language(text) == code, text


@pytest.mark.parametrize(
    ("word", "singular"),
    [
        ("abs", "abs"),  # three letters: left alone
        ("dies", "die"),  # four-letter "-ies"
        ("flies", "fly"),
        ("cafés", "cafés"),  # not English: left alone
    ],
)
def test_singularize_short_and_foreign_words(word: str, singular: str) -> None:
    assert singularize(word) == singular
