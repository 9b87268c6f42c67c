"""One message that names several images -> one Intent per image. Pure.

"segment the dog in image 1 and the cat in image 2" gives ``segment dog`` on
image 1 and ``segment cat`` on image 2 (the second part borrows the first
part's verb); "how many dogs are in images 1 and 2?" asks the same question
of both. A message naming at most one image is ``parse_intent`` unchanged.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

from core.intent import text as t
from core.intent import vocab as v
from core.intent.parse import parse_intent
from core.types import Intent

# "images 1 and 2", "photos 1, 2 & 3": one reference per number. Linear time on
# any text: whitespace and digit runs are taken whole (possessive quantifiers).
_NUMBERED = re.compile(
    r"\b(?P<noun>image|img|photo|picture|pic|shot)s?\s*+#?\s*+(?P<first>\d++)"
    r"(?P<more>(?:\s*+(?:,|&|\band\b)\s*+(?:and\s++)?#?\d++\b)+)",
    re.IGNORECASE,
)
_CONNECTOR_LEAD = re.compile(
    r"^(?:[\s,;:]*+(?:and|then|also|plus|&)\b)*[\s,;:]*", re.IGNORECASE
)
# The connectors ending a part: separators and "and"/"then"/... words, in one
# pass. Each character belongs to one token (no nested quantifiers: the old
# ``(?:[\s,;:]*\b(?:and|...)|[\s,;:&])*$`` was exponential on ", and, and...")
# and a match may not start inside a run of them, where it is never leftmost.
_CONNECTOR_TAIL = re.compile(
    r"(?<![\s,;:&])(?<!\band)(?<!\bthen)(?<!\balso)(?<!\bplus)"
    r"(?:[\s,;:&]|\b(?:and|then|also|plus))*+$",
    re.IGNORECASE,
)


def parse_requests(text: str, previous: Intent | None = None) -> tuple[Intent, ...]:
    """The Intents of one message, in the order the user wrote them.

    Several only when the message names two or more images, each part with
    its ``image_ref``. A part that only names an image ("and image 2") gets
    the request of the part before it (or after it, when it comes first).
    When a part cannot be run, its clarifying Intent is returned alone.
    """
    text = t.clean_text(text)  # the one normaliser, as in parse_intent
    parts = split_by_image(text)
    if parts is None:
        return (parse_intent(text, previous),)
    intents: list[Intent | None] = []
    refs: list[str | None] = []
    lead: str | None = None
    for part in parts:
        ref, _, _, rest = t.extract_image_ref(part)
        refs.append(ref)
        if not rest.strip(t.PUNCT_ENDS):
            intents.append(None)  # only an image: borrows a neighbour's request
            continue
        intent = parse_intent(part, previous)
        if not intent.runs_model and lead is not None:
            borrowed = parse_intent(f"{lead} {part}", previous)
            intent = borrowed if borrowed.runs_model else intent
        if not intent.runs_model:
            return (intent,)
        lead = lead or _lead(rest)
        intents.append(intent)
    filled = [i for i in intents if i is not None]
    if not filled:  # "image 1 and image 2": the previous request on each
        if previous is None or not previous.runs_model:
            return (parse_intent(text, previous),)
        again = replace(previous, follows_previous=True, refinement="repeat")
        return tuple(replace(again, image_ref=ref) for ref in refs)
    out: list[Intent] = []
    for index, (intent, ref) in enumerate(zip(intents, refs, strict=True)):
        if intent is None:
            before = [i for i in intents[:index] if i is not None]
            intent = replace(before[-1] if before else filled[0], image_ref=ref)
        out.append(intent)
    return tuple(out)


def split_by_image(text: str) -> list[str] | None:
    """The message cut into one piece per image it names, or None.

    Image references must all trail their request ("... in image 1 and ...
    in image 2") or all lead it ("on image 1 ..., on image 2 ..."); anything
    else is one request.
    """
    text = _NUMBERED.sub(_expand, t.clean_text(text))
    spans = _ref_spans(text)
    if len(spans) < 2:
        return None
    if not text[spans[-1][1] :].strip(t.PUNCT_ENDS):
        cuts = [end for _, end in spans[:-1]]
    elif not text[: spans[0][0]].strip(t.PUNCT_ENDS):
        cuts = [start for start, _ in spans[1:]]
    else:
        return None
    bounds = [0, *cuts, len(text)]
    parts = [_trim(text[a:b], first=a == 0) for a, b in itertools.pairwise(bounds)]
    if text.rstrip().endswith("?"):  # the question mark belongs to every part
        parts = [p if p.endswith("?") else f"{p}?" for p in parts]
    return [p for p in parts if p]


def _expand(m: re.Match[str]) -> str:
    numbers = [m["first"], *re.findall(r"\d+", m["more"])]
    return " and ".join(f"{m['noun']} {n}" for n in numbers)


def _ref_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every image reference, in order, without overlaps."""
    found = sorted(
        (m.start(), m.end()) for pattern in v.IMAGE_REFS for m in pattern.finditer(text)
    )
    spans: list[tuple[int, int]] = []
    for start, end in found:
        if not spans or start >= spans[-1][1]:
            spans.append((start, end))
    return spans


def _trim(part: str, first: bool) -> str:
    """Drop the "and"/"," joining two parts ("also" opening the message stays)."""
    part = part if first else _CONNECTOR_LEAD.sub("", part)
    return _CONNECTOR_TAIL.sub("", part).strip()


def _lead(part: str) -> str | None:
    """The detect/segment verb a part starts with ("segment", "find me")."""
    low = t.strip_polite(part.lower().strip(t.PUNCT_ENDS))
    for lead in t.LEADS.values():
        if m := lead.match(low):
            return low[: m.end()].strip()
    return None
