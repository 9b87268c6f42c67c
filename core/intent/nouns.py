"""The things a caption names, as detect targets. Pure, no model, no download.

``caption_nouns("a dog and two cats sitting on a red couch")`` gives
``("dog", "cat", "couch")``: the caption is cut into chunks at the words that
cannot be part of an object's name (verbs, prepositions, conjunctions,
punctuation); in each chunk the determiners, numbers and common adjectives
are dropped and what is left is one noun phrase, its last word singular.
Scene words ("image", "background", "day") are not objects and are skipped.
Good enough for PaliGemma's short captions, which name things plainly.
"""

from __future__ import annotations

import re

from core.intent.vocab import DETERMINERS, singularize

MAX_NOUNS = 8  # more names than this make one detect prompt too long to answer


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that end a noun phrase: prepositions, conjunctions, verbs, adverbs.
BREAK_WORDS = _words(
    """
    and or but with without on in at of to from by for into onto over under
    above below behind beside besides near next between among around through
    across along against inside outside up down off out while as than like
    is are was were be been being has have had do does did can could will
    would it its it's there here that which who whose where when this these
    those they them he she his her their we you i very also just not no
    sits sit stands stand lies lie walks walk rides ride holds hold looks
    look eats eat plays play flies fly shows show parked seen made filled
    covered topped lined stacked sitting standing lying laying walking riding
    holding looking eating playing flying showing wearing carrying running
    driving hanging pulling pushing waiting talking using taking getting
    """
)
# Words dropped from a phrase: how many, what colour, what size.
ADJECTIVES = _words(
    """
    red orange yellow green blue purple pink brown black white gray grey
    silver gold golden dark light bright colorful colourful small large big
    little tiny huge tall short long old young new empty full wooden metal
    plastic glass open closed few many several some lots lot group pair
    couple bunch number various different other another same single
    close-up closeup view
    """
)
# Nouns that name the picture or the scene, not a thing to box.
SCENE_WORDS = _words(
    """
    image picture photo photograph pic shot view scene background foreground
    front top bottom side left right middle center centre day night daytime
    sunny cloudy area distance close-up closeup front top way time part
    something someone thing things everything close
    """
)

# Nouns that end in "-ing" (other "-ing" words are verbs and end a phrase).
ING_NOUNS = _words(
    """
    building buildings ceiling ceilings painting paintings clothing ring rings
    wing wings string strings king swing swings sling railing railings awning
    awnings pudding icing frosting dumpling dumplings sibling siblings duckling
    ducklings seedling seedlings earring earrings
    """
)

_MARKUP = re.compile(r"<[^<>]{0,40}>")  # stray model tokens: <loc0001>
_TOKEN = re.compile(r"[a-z][a-z'-]*|[^\sa-z]")


def caption_nouns(caption: str, limit: int = MAX_NOUNS) -> tuple[str, ...]:
    """The distinct noun phrases ``caption`` names, singular, in order, at
    most ``limit``; () when it names none."""
    names: list[str] = []
    for chunk in _chunks(_MARKUP.sub(" ", caption.lower())):
        name = _noun_phrase(chunk)
        if name and name not in names:
            names.append(name)
    return tuple(names[:limit])


def _chunks(low: str) -> list[list[str]]:
    """Runs of words between break words and punctuation."""
    chunks: list[list[str]] = [[]]
    for token in _TOKEN.findall(low):
        if not token[0].isalpha() or token in BREAK_WORDS or _verb_ing(token):
            chunks.append([])
        else:
            chunks[-1].append(token)
    return [c for c in chunks if c]


def _verb_ing(word: str) -> bool:
    return word.endswith("ing") and len(word) > 4 and word not in ING_NOUNS


def _noun_phrase(words: list[str]) -> str | None:
    """The phrase left after determiners and adjectives, its head singular;
    None for a scene word or nothing left."""
    kept = [w for w in words if w not in DETERMINERS and w not in ADJECTIVES]
    owner = [w for w in kept[:-1] if w.endswith("'s")]  # "a woman's bag": bag
    kept = [w.removesuffix("'s") for w in kept if w not in owner]
    if not kept or kept[-1] in SCENE_WORDS:
        return None
    kept = kept[-2:]  # "fire hydrant", "tennis racket": at most a compound
    if kept[0] in SCENE_WORDS:
        kept = kept[1:]
    return " ".join([*kept[:-1], singularize(kept[-1])])
