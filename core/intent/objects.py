"""Requests that redraw the last result without the model. Pure.

"only 1 and 3", "remove 2", "show all again" pick the numbered objects of the
last reply's table; "hide the boxes", "show labels", "no masks" switch what is
drawn. ``parse_view`` turns them into an Intent with ``action=Action.VIEW``.
"""

from __future__ import annotations

import re

from core.types import GROUNDED_TASKS, Action, Intent, ViewChange

_NUMBER = r"(?:#\s*)?\d{1,3}"
_NUMBERS = re.compile(r"(\d++)(?:\s*+(?:-|to|through)\s*+#?\s*+(\d++))?")  # linear
_RANGE = rf"{_NUMBER}(?:\s*(?:-|to|through)\s*{_NUMBER})?"
_LIST = (
    rf"(?:(?:the\s+)?(?:objects?|items?|numbers?|nos?\.?|ones?)\s+)?"
    rf"(?P<numbers>{_RANGE}(?:\s*(?:,|;|&|\+|\band\b|\bor\b)\s*(?:and\s+)?{_RANGE})*)"
)
_ONLY = re.compile(
    r"^(?:(?:keep|show|leave)\s+(?:only\s+|just\s+)?|only\s+|just\s+)"
    rf"{_LIST}(?:\s+only)?$"
)
_DROP = re.compile(
    rf"^(?:remove|drop|delete|hide|without|not|no|minus|exclude|skip|ignore|"
    rf"take\s+out|get\s+rid\s+of)\s+{_LIST}$"
)
_SHOW_ALL = re.compile(
    r"^(?:show|bring\s+back|unhide|restore)\s+(?:them\s+all|all(?:\s+of\s+them)?|"
    r"all\s+(?:the\s+)?objects|everything|every\s+object)(?:\s+again)?$"
)
_LAYER = r"(?:the\s+)?(?P<layer>{})"
_LAYER_WORDS = r"(?:bounding\s+)?box(?:es)?|labels?|masks?|(?:mask\s+)?colou?rs?"
_LAYERS = (
    rf"{_LAYER.format(_LAYER_WORDS)}"
    rf"(?:\s*(?:,|and|&)\s*(?:the\s+)?(?:{_LAYER_WORDS}))*"
)
_ON = r"show|draw|display|turn\s+on|switch\s+on|enable|with|add|bring\s+back"
_OFF = r"hide|remove|turn\s+off|switch\s+off|disable|without|no|drop|clear"
_TOGGLE = re.compile(
    rf"^(?:(?P<on>{_ON})|(?P<off>{_OFF}))\s+{_LAYERS}"
    r"(?:\s+(?:again|too|please|back))*$|"
    rf"^{_LAYERS.replace('?P<layer>', '')}\s+(?P<state>on|off)$"
)


def parse_view(low: str, previous: Intent | None) -> Intent | None:
    """An Intent with ``action=Action.VIEW`` for a redraw request, else None.

    ``low`` is the lowercase request without "please" and the like.
    "show masks" after a detection is left to the parser (it means "run
    segment"), as is anything that names objects rather than numbers.
    """
    if m := _ONLY.match(low):
        return _view(ViewChange(keep=_numbers(m["numbers"])))
    if m := _DROP.match(low):
        return _view(ViewChange(drop=_numbers(m["numbers"])))
    if _SHOW_ALL.match(low):
        return _view(ViewChange(show_all=True))
    m = _TOGGLE.match(low)
    if m is None:
        return None
    on = m["on"] is not None or m["state"] == "on"
    layers = tuple(dict.fromkeys(_layer(w) for w in re.findall(_LAYER_WORDS, low)))
    detected = previous is not None and previous.task == "detect"
    if on and "masks" in layers and (detected or previous is None):
        return None  # "show the masks" of boxes: segment them (the model runs)
    if previous is not None and previous.task not in GROUNDED_TASKS:
        return None
    return _view(ViewChange(layers=tuple((layer, on) for layer in layers)))


def _view(change: ViewChange) -> Intent:
    return Intent(task="free", prompt="", action=Action.VIEW, view=change)


def _layer(word: str) -> str:
    if "box" in word:
        return "boxes"
    return "labels" if word.startswith("label") else "masks"


def _numbers(text: str) -> tuple[int, ...]:
    """ "1, 3 and 5-7" -> (1, 3, 5, 6, 7), sorted, without repeats."""
    out: set[int] = set()
    for start, end in _NUMBERS.findall(text):
        low, high = int(start), int(end or start)
        out.update(range(min(low, high), max(low, high) + 1))
    return tuple(sorted(out))
