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
from core.intent.everything import composed_intent
from core.intent.language import detect_language
from core.intent.messages import (
    HELP_MESSAGE,
    MSG_ADD_WHAT,
    MSG_ANSWER_WHAT,
    MSG_NO_PREVIOUS,
    MSG_REGION_EMPTY,
    MSG_REGION_WHAT,
    MSG_UNCLEAR,
    MSG_VAGUE,
)
from core.intent.objects import parse_view
from core.intent.refer import referring_targets
from core.intent.refine import (
    clarify,
    grounded_prev,
    instead_targets,
    language_change,
    remove_targets,
    switch_task,
    vague,
)
from core.intent.region import CLEAR, PICK, names_empty_region, split_region
from core.types import Action, Intent, Region

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
        return clarify(MSG_REGION_EMPTY)
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
    cleaned, low = text, text.lower().strip(t.PUNCT_ENDS)  # cleaned by parse_intent
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
        return clarify(MSG_UNCLEAR)
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


def _interpret(
    text_q: str, prev: Intent | None, lang: str | None, ref: str | None, select: bool
) -> Intent:
    low = t.strip_polite(text_q.lower().strip(t.PUNCT_ENDS))
    rest = " ".join(v.IMAGE_PHRASE.sub(" ", low).split()).strip(t.PUNCT_ENDS)
    if (composed := composed_intent(rest, prev)) is not None:
        return composed  # "detect everything", "describe each object"
    if rest and (view := parse_view(rest, prev)) is not None:
        return view
    if not rest:
        if lang:
            return language_change(prev, lang)
        if ref is not None:
            if select or prev is None:
                return Intent(task="free", prompt="", action=Action.SELECT)
            return replace(prev, follows_previous=True, refinement="repeat")
        return clarify(MSG_UNCLEAR)
    if v.REPEAT.match(rest):
        if prev is None:
            return clarify(MSG_NO_PREVIOUS)
        if lang:
            return language_change(prev, lang)
        return replace(prev, follows_previous=True, refinement="repeat", image_ref=None)
    m = v.SWITCH.match(rest)
    if m:
        return switch_task(prev, "detect" if v.BOX_WORD.match(m["kind"]) else "segment")
    if m := v.REMOVE_PREFIX.match(rest):
        return remove_targets(prev, rest[m.end() :])
    if m := v.ONLY_PREFIX.match(rest):
        return _only(prev, rest[m.end() :])
    if grounded_prev(prev) and (m := v.INSTEAD_PREFIX.match(rest)):
        if (instead := instead_targets(prev, rest[m.end() :])) is not None:
            return instead
    added = v.ADD_SUFFIX.sub("", v.ADD_PREFIX.sub("", rest, count=1))
    if added != rest and added:
        return _add(prev, added, low, text_q, lang)
    if added != rest:  # "also", "and ... too" with nothing named
        return clarify(MSG_ADD_WHAT)
    if ANSWER_AGAIN.match(rest):  # "answer it in German", "reply to that"
        if lang and prev is not None and prev.task == "answer":
            return language_change(prev, lang)
        return clarify(MSG_ANSWER_WHAT)
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
        hint = f" or “also {names}” to add it" if grounded_prev(prev) else ""
        return clarify(
            f"Do you want boxes (“detect {names}”) or masks (“segment {names}”){hint}?"
        )
    return clarify(MSG_UNCLEAR)


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
        if grounded_prev(prev):
            return switch_task(prev, task)
        if where and phrase:
            return None
        return clarify(
            f"{task.capitalize()} what? For example “{task} the cat”."
            if not phrase
            else MSG_NO_PREVIOUS
        )
    targets = t.split_targets(phrase) if where else referring_targets(phrase)
    if targets is None:
        return None
    if not targets or any(vague(name) for name in targets):
        return clarify(MSG_VAGUE)
    return t.run_intent(task, targets)


def _only(prev: Intent | None, phrase: str) -> Intent:
    phrase = phrase.strip(t.PUNCT_ENDS)
    for task, lead in t.LEADS.items():
        if m := lead.match(phrase):
            intent = _grounded(task, phrase[m.end() :], prev, None)
            return intent or clarify(MSG_UNCLEAR)
    words = re.findall(r"[\w'-]+", phrase)
    pick_one = bool(words) and words[-1] in ("one", "ones")  # "the left one"
    if pick_one:
        words.pop()
    while words and words[0] in v.DETERMINERS:
        words.pop(0)
    if prev is None or not grounded_prev(prev):
        return clarify(MSG_NO_PREVIOUS)
    if not words:
        return clarify(f"Which one? Say e.g. “only the left {prev.targets[0]}”.")
    if pick_one or all(w in v.POSITIONAL for w in words):
        heads = list(dict.fromkeys(name.split()[-1] for name in prev.targets))
        options = [" ".join([*words, head]) for head in heads]
        if len(options) > 1:
            return clarify(
                "Which one do you mean: "
                + " or ".join(f"“only the {o}”" for o in options)
                + "?"
            )
        return t.run_intent(prev.task, (options[0],), refinement="only")
    targets = referring_targets(" ".join(words))
    if not targets:
        return clarify(MSG_UNCLEAR)
    return t.run_intent(prev.task, targets, refinement="only")


def _add(
    prev: Intent | None, phrase: str, low: str, text_q: str, lang: str | None
) -> Intent:
    task = prev.task if grounded_prev(prev) else None
    for lead_task, lead in t.LEADS.items():
        if m := lead.match(phrase):
            task, phrase = lead_task, phrase[m.end() :]
            break
    else:
        if phrase.split()[0] in v.QUESTION_STARTERS or v.OCR.search(phrase):
            return _new_request(low, phrase, text_q, prev, lang)
    targets = referring_targets(phrase.strip(t.PUNCT_ENDS))
    if not targets:
        return clarify(MSG_UNCLEAR)
    if task is None:
        if prev is None:
            return clarify(MSG_NO_PREVIOUS)
        names = " ; ".join(targets)
        return clarify(f"Boxes or masks? Say “detect {names}” or “segment {names}”.")
    if any(vague(name) for name in targets):
        return clarify(MSG_VAGUE)
    old = prev.targets if grounded_prev(prev) and prev is not None else ()
    return t.run_intent(task, tuple(dict.fromkeys((*old, *targets))), refinement="add")


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
        return clarify(MSG_REGION_WHAT)
    return replace(prev, region=keep, follows_previous=True, refinement="region")
