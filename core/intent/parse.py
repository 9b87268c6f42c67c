"""Chat text (+ the previous intent) -> Intent with the exact PaliGemma prompt. Pure.

``parse_intent("find the dogs and the bikes")`` gives the prompt
``detect dog ; bike``; ``parse_intent("also the car", previous)`` adds a target
to the previous request. Unclear text gives ``Action.CLARIFY`` with a message
saying what to type: a guess would cost a minute of CPU for nothing.
Vocabulary (verbs, languages, plurals) lives in ``core.intent.vocab``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

from core.intent import text as t
from core.intent import vocab as v
from core.intent.language import detect_language
from core.intent.messages import (
    HELP_MESSAGE,
    MSG_ADD_WHAT,
    MSG_ANSWER_WHAT,
    MSG_NO_PREVIOUS,
    MSG_NOTHING_LEFT,
    MSG_REGION_EMPTY,
    MSG_REGION_WHAT,
    MSG_UNCLEAR,
    MSG_VAGUE,
)
from core.intent.objects import parse_view
from core.intent.refer import referring_targets
from core.intent.region import CLEAR, PICK, names_empty_region, split_region
from core.types import GROUNDED_TASKS, Action, Intent, Region

logger = logging.getLogger(__name__)

__all__ = ["HELP_MESSAGE", "parse_intent"]


def parse_intent(text: str, previous: Intent | None = None) -> Intent:
    """Turn one chat message into an Intent.

    ``previous`` is the last intent that ran (``action`` Action.RUN);
    refinements such as "also the bike" or "now as boxes" are resolved against
    it. Returns an Intent whose ``prompt`` is exactly what the model gets when
    it is a model request (Action.RUN); chat commands ("clarify", "help",
    "undo", "select", ...: core.types.Action) carry an empty prompt and,
    for "clarify" and "help", a ``message``;
    "export" asks for the downloads of the current result (image_ref "all":
    of every image analysed in the chat); "view" redraws the last result
    (``intent.view``: numbered objects to keep or drop, layers on or off).
    Every door's text goes through here (or ``parse_requests``), which first
    normalises it (``text.clean_text``: one space between words).
    """
    text = t.clean_text(text)
    if PICK.match(text):  # the chat shows the photo to drag a rectangle on
        return Intent(task="free", prompt="", action=Action.PICK_REGION)
    region, rest = split_region(text)
    if region is not None:
        return _with_region(region, rest, previous)
    if names_empty_region(text):
        return _clarify(MSG_REGION_EMPTY)
    intent = _parse(text, previous)
    if (
        intent.follows_previous
        and intent.region is None
        and previous is not None
        and previous.region is not None
    ):  # "also the dog" after "zoom into the top left" stays zoomed in
        intent = replace(intent, region=previous.region)
    return intent


def _parse(text: str, previous: Intent | None) -> Intent:
    prev = previous if previous is not None and previous.runs_model else None
    cleaned = text  # parse_intent has cleaned it
    low = cleaned.lower().strip(t.PUNCT_ENDS)
    words = re.findall(r"\w+", low)
    if v.HELP.match(low):
        return Intent(task="free", prompt="", action=Action.HELP, message=HELP_MESSAGE)
    if v.UNDO.match(low):
        return Intent(task="free", prompt="", action=Action.UNDO)
    export = v.EXPORT.match(low)
    if export:
        everything = v.EXPORT_ALL.search(export.group("rest"))
        return Intent(
            task="free",
            prompt="",
            action=Action.EXPORT,
            image_ref="all" if everything else None,
        )
    if not words or all(w in v.FILLER_WORDS for w in words):
        return _clarify(MSG_UNCLEAR)
    raw = t.raw_question(cleaned)  # typed text is kept exactly, refs included
    if raw is not None:
        return raw
    ref, select, text_q, stripped = t.extract_image_ref(cleaned)
    intent = t.raw_prompt(stripped)
    if intent is None:
        lang, text_q = t.extract_language(text_q)
        intent = _interpret(text_q, prev, lang, ref, select)
    if ref is not None and intent.action in (Action.RUN, Action.SELECT, Action.VIEW):
        intent = replace(intent, image_ref=ref)
    logger.debug("intent %r -> %s %r", text, intent.action, intent.prompt)
    return intent


# "where is the dog located": searched, so the run is taken from its first space.
_TRAILING_VERB = re.compile(r"(?<!\s)\s++(?:is|are|located|positioned|placed)$")
ANSWER_AGAIN = re.compile(
    r"^(?:answer|reply|respond)(?:\s+(?:to\s+)?(?:it|that|this|me))?(?:\s+again)?$"
)


def _clarify(message: str) -> Intent:
    return Intent(task="free", prompt="", action=Action.CLARIFY, message=message)


def _interpret(
    text_q: str, prev: Intent | None, lang: str | None, ref: str | None, select: bool
) -> Intent:
    low = t.strip_polite(text_q.lower().strip(t.PUNCT_ENDS))
    rest = " ".join(v.IMAGE_PHRASE.sub(" ", low).split()).strip(t.PUNCT_ENDS)
    if rest and (view := parse_view(rest, prev)) is not None:
        return view
    if not rest:
        if lang:
            return _language_change(prev, lang)
        if ref is not None:
            if select or prev is None:
                return Intent(task="free", prompt="", action=Action.SELECT)
            return replace(prev, follows_previous=True, refinement="repeat")
        return _clarify(MSG_UNCLEAR)
    if v.REPEAT.match(rest):
        if prev is None:
            return _clarify(MSG_NO_PREVIOUS)
        if lang:
            return _language_change(prev, lang)
        return replace(prev, follows_previous=True, refinement="repeat", image_ref=None)
    m = v.SWITCH.match(rest)
    if m:
        return _switch(prev, "detect" if v.BOX_WORD.match(m["kind"]) else "segment")
    if m := v.REMOVE_PREFIX.match(rest):
        return _remove(prev, rest[m.end() :])
    if m := v.ONLY_PREFIX.match(rest):
        return _only(prev, rest[m.end() :])
    added = v.ADD_SUFFIX.sub("", v.ADD_PREFIX.sub("", rest, count=1))
    if added != rest and added:
        return _add(prev, added, low, text_q, lang)
    if added != rest:  # "also", "and ... too" with nothing named
        return _clarify(MSG_ADD_WHAT)
    if ANSWER_AGAIN.match(rest):  # "answer it in German", "reply to that"
        if lang and prev is not None and prev.task == "answer":
            return _language_change(prev, lang)
        return _clarify(MSG_ANSWER_WHAT)
    return _new_request(low, rest, text_q, prev, lang)


def _new_request(
    low: str, rest: str, text_q: str, prev: Intent | None, lang: str | None
) -> Intent:
    if v.OCR.search(low) or v.OCR.search(rest):  # rest: "also ocr"
        return t.run_intent("ocr")
    if v.DESCRIBE.search(rest) or v.DESCRIBE.search(low):
        return t.run_intent("describe", lang=lang or t.language_named(low))
    if v.CAPTION.search(low):
        return t.run_intent("caption", lang=lang or t.language_named(low))
    for task, lead in t.LEADS.items():
        if m := lead.match(rest):
            intent = _grounded(task, rest[m.end() :], prev, v.WHERE_LEAD.match(rest))
            if intent is not None:
                return intent
            break
    first = rest.split()[0]
    question = re.sub(
        r"^(?:(?:now|ok|okay|so|then|and|also)\b[\s,]*)+",
        "",
        text_q,
        flags=re.IGNORECASE,
    ).lstrip(" ,;:-")  # a trailing ";" is the Greek question mark
    if first in v.QUESTION_STARTERS or first == "describe" or text_q.endswith("?"):
        return t.run_intent(
            "answer", lang=lang or detect_language(question), question=question
        )
    if (written := detect_language(question, min_confidence=0.9)) != "en":
        return t.run_intent("answer", lang=lang or written, question=question)
    targets = t.split_targets(rest)
    if targets and len(targets) <= 3:
        names = " ; ".join(targets)
        hint = f" or “also {names}” to add it" if _grounded_prev(prev) else ""
        return _clarify(
            f"Do you want boxes (“detect {names}”) or masks (“segment {names}”){hint}?"
        )
    return _clarify(MSG_UNCLEAR)


def _grounded_prev(prev: Intent | None) -> bool:
    return prev is not None and prev.task in GROUNDED_TASKS and bool(prev.targets)


def _grounded(
    task: str, phrase: str, prev: Intent | None, where: object
) -> Intent | None:
    """Targets after a detect/segment verb; None when the phrase is a question."""
    if where:
        phrase = _TRAILING_VERB.sub("", phrase)
    phrase = phrase.strip(t.PUNCT_ENDS)
    if phrase in t.LONE_DETERMINERS:  # "segment the": cut short, nothing named
        phrase = ""
    if not phrase or phrase in v.PRONOUNS:
        if _grounded_prev(prev):
            return _switch(prev, task)
        if where and phrase:
            return None
        return _clarify(
            f"{task.capitalize()} what? For example “{task} the cat”."
            if not phrase
            else MSG_NO_PREVIOUS
        )
    targets = t.split_targets(phrase) if where else referring_targets(phrase)
    if targets is None:
        return None
    if not targets or any(_vague(name) for name in targets):
        return _clarify(MSG_VAGUE)
    return t.run_intent(task, targets)


def _vague(name: str) -> bool:
    """ "everything", "all objects on the left": no object named."""
    return name in v.VAGUE_TARGETS or name.split()[0] in v.VAGUE_TARGETS


def _switch(prev: Intent | None, task: str) -> Intent:
    if prev is None:
        return _clarify(MSG_NO_PREVIOUS)
    if not _grounded_prev(prev):
        what = "Boxes" if task == "detect" else "Masks"
        return _clarify(f"{what} of what? Name the things, e.g. “{task} dog ; bike”.")
    return t.run_intent(task, prev.targets, refinement="switch")


def _matches(target: str, wanted: str) -> bool:
    return target == wanted or target.endswith(" " + wanted)


def _remove(prev: Intent | None, phrase: str) -> Intent:
    if prev is None or not _grounded_prev(prev):
        return _clarify(MSG_NO_PREVIOUS)
    unwanted = referring_targets(phrase.strip(t.PUNCT_ENDS)) or ()
    if not unwanted:
        return _clarify(
            f"Remove what? The current request is: {', '.join(prev.targets)}."
        )
    for name in unwanted:
        if not any(_matches(have, name) for have in prev.targets):
            return _clarify(
                f"“{name}” is not in the current request "
                f"({', '.join(prev.targets)}). Say e.g. “remove {prev.targets[-1]}”."
            )
    kept = tuple(
        have for have in prev.targets if not any(_matches(have, n) for n in unwanted)
    )
    if not kept:
        return _clarify(MSG_NOTHING_LEFT)
    return t.run_intent(prev.task, kept, refinement="remove")


def _only(prev: Intent | None, phrase: str) -> Intent:
    phrase = phrase.strip(t.PUNCT_ENDS)
    for task, lead in t.LEADS.items():
        if m := lead.match(phrase):
            intent = _grounded(task, phrase[m.end() :], prev, None)
            return intent or _clarify(MSG_UNCLEAR)
    words = re.findall(r"[\w'-]+", phrase)
    pick_one = bool(words) and words[-1] in ("one", "ones")  # "the left one"
    if pick_one:
        words.pop()
    while words and words[0] in v.DETERMINERS:
        words.pop(0)
    if prev is None or not _grounded_prev(prev):
        return _clarify(MSG_NO_PREVIOUS)
    if not words:
        return _clarify(f"Which one? Say e.g. “only the left {prev.targets[0]}”.")
    if pick_one or all(w in v.POSITIONAL for w in words):
        heads = list(dict.fromkeys(name.split()[-1] for name in prev.targets))
        options = [" ".join([*words, head]) for head in heads]
        if len(options) > 1:
            return _clarify(
                "Which one do you mean: "
                + " or ".join(f"“only the {o}”" for o in options)
                + "?"
            )
        return t.run_intent(prev.task, (options[0],), refinement="only")
    targets = referring_targets(" ".join(words))
    if not targets:
        return _clarify(MSG_UNCLEAR)
    return t.run_intent(prev.task, targets, refinement="only")


def _add(
    prev: Intent | None, phrase: str, low: str, text_q: str, lang: str | None
) -> Intent:
    task = prev.task if _grounded_prev(prev) else None
    for lead_task, lead in t.LEADS.items():
        if m := lead.match(phrase):
            task, phrase = lead_task, phrase[m.end() :]
            break
    else:
        if phrase.split()[0] in v.QUESTION_STARTERS or v.OCR.search(phrase):
            return _new_request(low, phrase, text_q, prev, lang)
    targets = referring_targets(phrase.strip(t.PUNCT_ENDS))
    if not targets:
        return _clarify(MSG_UNCLEAR)
    if task is None:
        if prev is None:
            return _clarify(MSG_NO_PREVIOUS)
        names = " ; ".join(targets)
        return _clarify(f"Boxes or masks? Say “detect {names}” or “segment {names}”.")
    if any(_vague(name) for name in targets):
        return _clarify(MSG_VAGUE)
    old = prev.targets if _grounded_prev(prev) and prev is not None else ()
    return t.run_intent(task, tuple(dict.fromkeys((*old, *targets))), refinement="add")


def _language_change(prev: Intent | None, lang: str) -> Intent:
    if prev is None or prev.task not in ("caption", "describe", "answer", "question"):
        return _clarify(
            "A language works with captions, descriptions and questions, e.g. "
            f"“caption in {v.LANGUAGES[lang][0].capitalize()}”. "
            "Box and mask labels are always English."
        )
    question = (
        prev.prompt.split(" ", 2)[2] if prev.task in ("answer", "question") else ""
    )
    return t.run_intent(prev.task, lang=lang, question=question, refinement="language")


def _with_region(region: Region, rest: str, previous: Intent | None) -> Intent:
    """A request limited to ``region`` (CLEAR: the whole photo again).

    Words beside the region are parsed as usual ("zoom into the top left and
    detect bottles"); a region alone re-runs the previous request there.
    """
    keep = None if region == CLEAR else region
    rest = re.sub(r"^(?:and|then|please)\b\s*", "", rest, flags=re.I).strip()
    if rest:
        intent = parse_intent(rest, previous)
        return replace(intent, region=keep) if intent.runs_model else intent
    prev = previous if previous is not None and previous.runs_model else None
    if prev is None:
        return _clarify(MSG_REGION_WHAT)
    return replace(prev, region=keep, follows_previous=True, refinement="region")
