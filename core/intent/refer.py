"""Referring expressions after a detect/segment verb: kept as the user wrote them.

PaliGemma is trained on referring expressions ("person holding an umbrella",
"second car from the left"), so a phrase with modifiers (a relative clause,
a participle with an object, a prepositional phrase) goes to the model
unchanged, less its leading article. Plain lists ("the dogs and the bikes")
are still split and singularised by ``text.split_targets``. Pure.
"""

from __future__ import annotations

import re

from core.intent import text as t
from core.intent import vocab as v


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that make a phrase a referring expression rather than a bare name.
RELATIVES = _words("who whom whose which that where")
PREPOSITIONS = _words(
    """
    on in at with without near next behind under over above below beside besides
    between from by to into onto inside outside across along around against among
    beneath underneath beyond toward towards through atop holding wearing
    """
)
AUXILIARIES = _words("is are was were has have had being")
# A phrase starting with one of these after a verb is a question, not a target:
# "find out why...", "show me what is written", "see if there is a dog".
QUESTION_LEADS = _words(
    "what why how when where if whether who whom which whose is are do does did "
    "can could would will should there out"
)
PERSONAL = _words("i you we me us")
MAX_WORDS = 20  # longer than any sensible description of one object
# A new object starts at ", the"/"and the"/"; a" (but not inside "between").
_NEW_OBJECT = re.compile(
    r"(?:(?<!\s)\s++)?(?:;|,\s*+(?:and|or)?|\band\b|\bor\b|&)\s*+"
    r"(?=\b(?:the|all|both|an?)\b)"
)
_ARTICLE_LEADS = _words("the a an all both")


def is_referring(phrase: str) -> bool:
    """True when ``phrase`` (lowercase) has modifiers: keep it as one expression.

    "person holding an umbrella", "car on the left", "man who is running":
    True. "dogs and bikes", "left wheel", "bottles of wine": False.
    """
    words = re.findall(r"[\w'-]+", phrase)
    for index, word in enumerate(words[1:], start=1):
        if word in PREPOSITIONS or word in AUXILIARIES:
            return True
        if word in RELATIVES and words[index - 1] not in v.DETERMINERS:
            return True
        following = words[index + 1] if index + 1 < len(words) else ""
        if word.endswith(("ing", "ed")) and following in v.DETERMINERS:
            return True  # a participle with its object: "holding an umbrella"
    return False


def referring_targets(phrase: str) -> tuple[str, ...] | None:
    """The objects a request names after its verb, or None for a question.

    Lowercase input without the verb: "the person holding an umbrella and the
    dog" -> ("person holding an umbrella", "dog"). Plain lists go through
    ``split_targets`` (singular heads); referring expressions keep their words
    and lose only their leading articles and numbers.
    """
    phrase = " ".join(v.IMAGE_PHRASE.sub(" ", phrase).split()).strip(t.PUNCT_ENDS)
    words = re.findall(r"[\w'-]+", phrase)
    if not words or words[0] in QUESTION_LEADS:
        return None
    if any(w in PERSONAL for w in words) or len(words) > MAX_WORDS:
        return None
    if not is_referring(phrase):
        return t.split_targets(phrase, strict=False)
    parts = [phrase] if "between" in words else _NEW_OBJECT.split(phrase)
    if ";" in phrase:
        parts = [p for part in phrase.split(";") for p in _NEW_OBJECT.split(part)]
    out: list[str] = []
    for part in parts:
        for name in _expressions(part):
            if name not in out:
                out.append(name)
    return tuple(out)


def _expressions(part: str) -> tuple[str, ...]:
    """ "the second car from the left!" -> ("second car from the left",)."""
    words = re.findall(r"[\w'-]+", part)
    while words and (words[0] in _ARTICLE_LEADS or words[0].isdigit()):
        words.pop(0)
    if words and not is_referring(" ".join(words)):
        return t.split_targets(" ".join(words), strict=False) or ()
    return (" ".join(words),) if words else ()
