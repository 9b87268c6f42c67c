"""parse_intent edge cases found by mutation testing (docs/testing.md,
"core/intent/"): image references, repeats, languages, word limits, plurals,
redraws. Each row is a short conversation and what its last turn becomes.
"""

from __future__ import annotations

import pytest

from core.intent import language
from core.intent.language import detect_language, supported_codes
from core.intent.parse import parse_intent
from core.intent.vocab import LANGUAGES, singularize
from tests.support.intents import reply_to

# Image references, repeats and languages -------------------------------------

# (conversation, (action, prompt, image_ref, refinement, follows_previous))
TURNS = [
    # "what about X?" after boxes or masks: the same task for X (issue 24)
    (
        ("segment left wheel", "what about the right wheel?"),
        ("run", "segment right wheel", None, "instead", True),
    ),
    (
        ("detect the cat", "how about the dog?"),
        ("run", "detect dog", None, "instead", True),
    ),
    (
        ("detect the cat", "and what about the bikes?"),
        ("run", "detect bike", None, "instead", True),
    ),
    (
        ("segment left wheel", "and the dog?"),
        ("run", "segment left wheel ; dog", None, "add", True),
    ),
    (
        ("segment left wheel", "what about it?"),
        ("run", "answer en what about it?", None, None, False),
    ),  # nothing named: a question
    (
        ("what about the dog?",),
        ("run", "answer en what about the dog?", None, None, False),
    ),
    (
        ("caption", "how about the dog?"),
        ("run", "answer en how about the dog?", None, None, False),
    ),
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
    (("describe the photos",), ("run", "describe en", None, None, False)),
    (("detect dog", "only segment"), ("run", "segment dog", None, "switch", True)),
    (
        ("detect dog on image 2", "again"),
        ("run", "detect dog", None, "repeat", True),
    ),  # "again" runs on the current image
    (
        ("detect dog", "only, segment the cat"),
        ("run", "segment cat", None, None, False),
    ),
    (
        ("detect black dog ; cat", "remove the dog"),
        ("run", "detect cat", None, "remove", True),
    ),  # "dog" names "black dog"
    (("OK, how many dogs?",), ("run", "answer en how many dogs?", None, None, False)),
    (
        ("is 2,3 and 2,5 the same size?",),
        ("run", "answer en is 2,3 and 2,5 the same size?", None, None, False),
    ),  # numbers without "region"/"zoom"/"box": not a region
    (
        ("detect dog", "again, in this photo"),
        ("run", "detect dog", None, "repeat", True),
    ),
    (
        ("detect dog", "also ocr"),
        ("run", "ocr", None, None, False),
    ),  # was "detect ocr?"
    (("detect dog", "segment: it"), ("run", "segment dog", None, "switch", True)),
    (
        ("find the dog on the sofa and the",),
        ("run", "detect dog on the sofa", None, None, False),
    ),  # a trailing "and the" names nothing
    (
        ("detect dog ; cat", "only the black cat"),
        ("run", "detect black cat", None, "only", True),
    ),
    (("also segment the cat",), ("run", "segment cat", None, "add", True)),
    (
        ("question en what is it", "in German"),
        ("run", "question de what is it", None, "language", True),
    ),
    (("ok: how many dogs?",), ("run", "answer en how many dogs?", None, None, False)),
    (
        ("ok: Xbox or PlayStation?",),
        ("run", "answer en Xbox or PlayStation?", None, None, False),
    ),
    (
        ("image 2: how many dogs?",),
        ("run", "answer en the image: how many dogs?", "2", None, False),
    ),
    (
        ("find the man carrying the bags",),
        ("run", "detect man carrying the bags", None, None, False),
    ),  # a participle with its object keeps the words as typed
    (
        ("find the dog on the left; cat",),
        ("run", "detect dog on the left ; cat", None, None, False),
    ),
    (
        ("find the dog near the car and the cat sitting",),
        ("run", "detect dog near the car ; cat sitting", None, None, False),
    ),
    (
        (
            "find the brown dog near the small red car on the left side of the old "
            "wooden house by the lake",
        ),
        (
            "run",
            "detect brown dog near the small red car on the left side of the old "
            "wooden house by the lake",
            None,
            None,
            False,
        ),
    ),  # twenty words: still one description
    (
        ("detect red big old rusty bent bikes",),
        ("run", "detect red big old rusty bent bikes", None, None, False),
    ),  # six plain words: typed grammar, kept as is
    (
        ("detect very red big old rusty bent bikes",),
        ("run", "detect very red big old rusty bent bike", None, None, False),
    ),  # seven: read as words, head noun made singular
    (
        ("detect very big old rusty bent red shiny dirty small wet dark bikes",),
        (
            "run",
            "detect very big old rusty bent red shiny dirty small wet dark bike",
            None,
            None,
            False,
        ),
    ),  # twelve words after the verb: still a name
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
    # cut short after the verb: the last request's objects, as masks
    (("detect dog", "segment the"), ("run", "segment dog", None, "switch", True)),
    (
        ("how many dogs are there?", "answer it in German"),
        ("run", "answer de how many dogs are there?", None, "language", True),
    ),
    (("segment a",), ("run", "segment a", None, None, False)),  # "a": a name
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
        ("tennis", "tennis"),  # "-is" is not a plural
        ("dog's", "dog's"),  # a possessive
        ("buzzes", "buzz"),  # "-zzes"
    ],
)
def test_singularize_short_and_foreign_words(word: str, singular: str) -> None:
    assert singularize(word) == singular


def test_redraw_switches_and_ranges() -> None:
    previous = parse_intent("detect dog ; cat ; bike")
    on = parse_intent("boxes on", previous)
    assert (on.action, on.task, on.view.layers) == ("view", "free", (("boxes", True),))
    assert parse_intent("labels off", previous).view.layers == (("labels", False),)
    assert parse_intent("only 1 to 3", previous).view.keep == (1, 2, 3)
    caption = parse_intent("caption")
    assert parse_intent("hide the labels", caption).action == "clarify"


def test_redraw_by_number_ignores_words_about_the_photo() -> None:
    previous = parse_intent("detect dog ; cat ; bike")
    intent = parse_intent("only 1 and 3, in this photo", previous)
    assert (intent.action, intent.view.keep) == ("view", (1, 3))
