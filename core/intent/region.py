"""Region prompts: "zoom into the top left", "region 100,200 to 600,700". Pure.

``split_region(text)`` takes the region words off a chat message and returns
the Region they name (or CLEAR for "zoom out") and the rest of the message,
which is parsed as usual. A referring expression such as "the cup in the top
left" is left alone: only "zoom", "crop", "focus on" or the word "region"
(with numbers) name a region, so PaliGemma still gets "cup in the top left".
"""

from __future__ import annotations

import re

from core.types import Region

CLEAR = Region("fraction", (0.0, 0.0, 1.0, 1.0))  # the whole photo again

AREAS: dict[str, tuple[float, float, float, float]] = {
    "top left": (0.0, 0.0, 0.5, 0.5),
    "top right": (0.5, 0.0, 1.0, 0.5),
    "bottom left": (0.0, 0.5, 0.5, 1.0),
    "bottom right": (0.5, 0.5, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "center": (0.25, 0.25, 0.75, 0.75),
    "centre": (0.25, 0.25, 0.75, 0.75),
    "middle": (0.25, 0.25, 0.75, 0.75),
}
_AREA = "|".join(sorted((re.escape(a) for a in AREAS), key=len, reverse=True))
_AREA_WORDS = (
    r"(?:\s++(?:corner|quarter|half|part|side|area|region|of\s+the\s+"
    r"(?:image|photo|picture)))*"
)
# Linear time on any text (a chat message is attacker-controlled): no two
# quantifiers may match the same characters, so every whitespace run is taken
# whole (possessive ``\s*+``) and, where a pattern opens with optional
# whitespace, only from the run's first character (``_LEAD``): a match that
# starts later in the run is never the leftmost one. Same matches as before.
_LEAD = r"(?:[,;:]|(?<!\s))\s*+"  # "[,;:]?\s*" without a start inside a run
_NUMBER = r"(\d{1,5}(?:\.\d++)?)"
_SEP = r"(?:\s*+,\s*+|\s++)"  # was \s*[,\s]\s*: n^4 on a run of spaces
_PIXELS = (
    rf"\(?\s*+{_NUMBER}{_SEP}{_NUMBER}\s*+\)?\s*+(?:to|-|\u2013|and)\s*+"
    rf"\(?\s*+{_NUMBER}{_SEP}{_NUMBER}\s*+\)?"
)
_ZOOM = (
    r"(?:zoom(?:ed)?\s+(?:in\s+)?(?:in|into|onto|on|to)|zoom\s+in\s+on|"
    r"crop(?:ped)?\s+(?:to|in\s+on)|focus(?:ed)?\s+on|look\s+(?:closer\s+)?at)"
)
_BY_AREA = re.compile(
    rf"{_LEAD}(?:and\s++)?{_ZOOM}\s++(?:the\s++)?(?P<area>{_AREA}){_AREA_WORDS}"
    r"\s*+[,;:.]?",
    re.IGNORECASE,
)
_BY_PIXELS = re.compile(
    rf"{_LEAD}(?:(?:in|inside|within|on)\s++)?(?:the\s++)?(?:{_ZOOM}\s++(?:the\s++)?)?"
    rf"(?:region|area|box|crop|rectangle)?\s*+(?:from\s++)?{_PIXELS}\s*+[,;:.]?",
    re.IGNORECASE,
)
PICK = re.compile(
    r"^\s*+(?:(?:let\s+me|i\s+want\s+to|can\s+i)\s+)?(?:draw|select|pick|mark|choose)"
    r"\s++(?:a|an|the)?\s*+(?:region|area|box|rectangle|part)\b"
    r"(?!\s+(?:around|of|on|for|over)\b)",  # "draw a box around the car": detect
    re.IGNORECASE,
)
_HAS_REGION_WORD = re.compile(r"\b(?:region|area|box|crop|rectangle|zoom)", re.I)
_ZOOM_OUT = re.compile(
    r"^\s*(?:zoom\s+out|(?:back\s+to\s+|show\s+|use\s+)?the\s+whole\s+"
    r"(?:image|photo|picture)(?:\s+again)?)\s*[,;:.!]?\s*",
    re.IGNORECASE,
)


def split_region(text: str) -> tuple[Region | None, str]:
    """(the region named in ``text`` or None, ``text`` without those words).

    CLEAR for "zoom out" / "the whole photo". Pixel boxes are reordered so
    that x1 < x2 and y1 < y2; a degenerate one (zero width or height) is
    returned as it is not: None with the text unchanged (``names_empty_region``
    tells ``parse_intent`` to ask for a real one).
    """
    out = _ZOOM_OUT.match(text)
    if out:
        return CLEAR, text[out.end() :].strip()
    match = _BY_AREA.search(text)
    if match:
        box = AREAS[match.group("area").lower()]
        return Region("fraction", box), _cut(text, match)
    if _HAS_REGION_WORD.search(text):
        match = _BY_PIXELS.search(text)
        if match:
            x1, y1, x2, y2 = (float(match.group(i)) for i in range(1, 5))
            box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
            if box[0] < box[2] and box[1] < box[3]:
                return Region("px", box), _cut(text, match)
    return None, text


def names_empty_region(text: str) -> bool:
    """True when ``text`` names a pixel region with no width or height
    ("region 100,200 to 100,700"), which ``split_region`` leaves alone."""
    match = _BY_PIXELS.search(text) if _HAS_REGION_WORD.search(text) else None
    if match is None:
        return False
    x1, y1, x2, y2 = (float(match.group(i)) for i in range(1, 5))
    return x1 == x2 or y1 == y2


def _cut(text: str, match: re.Match[str]) -> str:
    rest = f"{text[: match.start()]} {text[match.end() :]}"
    return re.sub(r"\s+", " ", rest).strip(" ,;:.")


def region_to_pixels(
    region: Region, size_wh: tuple[int, int]
) -> tuple[int, int, int, int]:
    """The region in pixels of a ``size_wh`` photo, clipped to it.

    Raises ValueError when nothing of it lies on the photo.
    """
    width, height = size_wh
    x1, y1, x2, y2 = region.box
    if region.unit == "fraction":
        x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
    box = (
        max(0, min(width, round(x1))),
        max(0, min(height, round(y1))),
        max(0, min(width, round(x2))),
        max(0, min(height, round(y2))),
    )
    if box[2] - box[0] < 1 or box[3] - box[1] < 1:
        raise ValueError(
            f"the region {region.box} lies outside the {width}x{height} photo"
        )
    return box
