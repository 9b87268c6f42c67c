"""Edits of the previous request: boxes <-> masks, "remove the dog", a new
answer language; and the "clarify" answer when text cannot run. Pure."""

from __future__ import annotations

from core.intent import text as t
from core.intent import vocab as v
from core.intent.messages import MSG_NO_PREVIOUS, MSG_NOTHING_LEFT
from core.intent.refer import referring_targets
from core.types import GROUNDED_TASKS, Action, Intent


def clarify(message: str) -> Intent:
    """No model run: ``message`` tells the user what to type instead."""
    return Intent(task="free", prompt="", action=Action.CLARIFY, message=message)


def grounded_prev(prev: Intent | None) -> bool:
    """True when ``prev`` asked for boxes or masks of named things."""
    return prev is not None and prev.task in GROUNDED_TASKS and bool(prev.targets)


def vague(name: str) -> bool:
    """ "everything", "all objects on the left": no object named."""
    return name in v.VAGUE_TARGETS or name.split()[0] in v.VAGUE_TARGETS


def switch_task(prev: Intent | None, task: str) -> Intent:
    """The previous targets again as ``task`` ("now as boxes")."""
    if prev is None:
        return clarify(MSG_NO_PREVIOUS)
    if not grounded_prev(prev):
        what = "Boxes" if task == "detect" else "Masks"
        return clarify(f"{what} of what? Name the things, e.g. “{task} dog ; bike”.")
    return t.run_intent(task, prev.targets, refinement="switch")


def instead_targets(prev: Intent, phrase: str) -> Intent | None:
    """ "what about the right wheel?" after "segment left wheel": the same
    task for the named targets; None when nothing is named (a question)."""
    phrase = phrase.strip(t.PUNCT_ENDS)
    if phrase in v.PRONOUNS:
        return None
    targets = referring_targets(phrase)
    if not targets or any(vague(name) for name in targets):
        return None
    return t.run_intent(prev.task, targets, refinement="instead")


def _matches(target: str, wanted: str) -> bool:
    return target == wanted or target.endswith(" " + wanted)


def remove_targets(prev: Intent | None, phrase: str) -> Intent:
    """The previous request without the targets ``phrase`` names."""
    if prev is None or not grounded_prev(prev):
        return clarify(MSG_NO_PREVIOUS)
    unwanted = referring_targets(phrase.strip(t.PUNCT_ENDS)) or ()
    if not unwanted:
        return clarify(
            f"Remove what? The current request is: {', '.join(prev.targets)}."
        )
    for name in unwanted:
        if not any(_matches(have, name) for have in prev.targets):
            return clarify(
                f"“{name}” is not in the current request "
                f"({', '.join(prev.targets)}). Say e.g. “remove {prev.targets[-1]}”."
            )
    kept = tuple(
        have for have in prev.targets if not any(_matches(have, n) for n in unwanted)
    )
    if not kept:
        return clarify(MSG_NOTHING_LEFT)
    return t.run_intent(prev.task, kept, refinement="remove")


def language_change(prev: Intent | None, lang: str) -> Intent:
    """The previous caption, description or question answered in ``lang``."""
    if prev is None or prev.task not in ("caption", "describe", "answer", "question"):
        return clarify(
            "A language works with captions, descriptions and questions, e.g. "
            f"“caption in {v.LANGUAGES[lang][0].capitalize()}”. "
            "Box and mask labels are always English."
        )
    question = (
        prev.prompt.split(" ", 2)[2] if prev.task in ("answer", "question") else ""
    )
    return t.run_intent(prev.task, lang=lang, question=question, refinement="language")
