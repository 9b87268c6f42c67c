"""Frozen values that cross module boundaries.

Conventions: boxes named ``box`` are normalised ``(x1, y1, x2, y2)`` floats in
[0, 1]; boxes named ``box_px`` are integer pixels of the *original* image;
``size_wh`` is ``(width, height)``; masks are ``(H, W)`` bool arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BoxXYXY = tuple[float, float, float, float]
BoxPx = tuple[int, int, int, int]


@dataclass(frozen=True)
class ParsedObject:
    """One object of PaliGemma's output.

    ``box`` is already reordered from the model's y-first order to
    ``(x1, y1, x2, y2)``, normalised to [0, 1]. ``seg_indices`` holds the 16
    codebook indices (0..127) of the mask, or None when the model gave none.
    """

    label: str | None
    box: BoxXYXY
    seg_indices: tuple[int, ...] | None = None


@dataclass(frozen=True, eq=False)
class Detection:
    """One object placed on the original image.

    ``mask`` is ``(H, W)`` bool in original image size, or None for boxes only.
    """

    label: str | None
    box_px: BoxPx
    mask: np.ndarray | None = None

    @property
    def area(self) -> int:
        """Mask area in pixels; the box area when there is no mask."""
        if self.mask is not None:
            return int(self.mask.sum())
        x1, y1, x2, y2 = self.box_px
        return max(0, x2 - x1) * max(0, y2 - y1)


@dataclass(frozen=True)
class Region:
    """A part of the photo to look at: ``box`` is (x1, y1, x2, y2) in ``unit``.

    ``unit`` "fraction": 0..1 of the photo's width and height ("zoom into the
    top left"); "px": pixels of the original photo ("region 100,200 to
    600,700"). Resolved against the photo's size when the request runs.
    """

    unit: str
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if self.unit not in ("fraction", "px"):
            raise ValueError(f"unit must be 'fraction' or 'px', got {self.unit!r}")
        x1, y1, x2, y2 = self.box
        if not (x1 < x2 and y1 < y2 and min(self.box) >= 0):
            raise ValueError(f"box must be ordered and >= 0, got {self.box}")
        if self.unit == "fraction" and max(self.box) > 1:
            raise ValueError(f"a fraction box must be within 0..1, got {self.box}")


@dataclass(frozen=True)
class ViewChange:
    """A redraw of the last result without running the model.

    ``keep`` and ``drop`` are 1-based object numbers as the last reply's table
    shows them ("only 1 and 3", "remove 2"); ``show_all`` brings back every
    object; ``layers`` switches drawing on or off: (("boxes", False),) for
    "hide the boxes", names from ``VIEW_LAYERS``.
    """

    keep: tuple[int, ...] = ()
    drop: tuple[int, ...] = ()
    show_all: bool = False
    layers: tuple[tuple[str, bool], ...] = ()


VIEW_LAYERS = ("boxes", "labels", "masks")


@dataclass(frozen=True)
class Intent:
    """What the user asked for, as the exact prompt the model gets.

    ``task`` is one of TASKS; ``prompt`` is exactly the text given to the
    model. ``action`` says what the chat does with it: "run" the model, or
    answer without it ("clarify", "undo", "help", "select", "export", "view").

    ``image_ref`` is None for the active image, "1", "2"... (1-based upload
    order), "last", "all", or a file name as typed. ``follows_previous`` is
    True when the intent was derived from the previous one; ``refinement``
    then says how: "add", "only", "remove", "switch", "repeat", "language".
    """

    task: str
    prompt: str
    targets: tuple[str, ...] = ()
    language: str = "en"
    action: str = "run"
    message: str | None = None
    image_ref: str | None = None
    follows_previous: bool = False
    refinement: str | None = None
    region: Region | None = None  # look only at this part of the photo
    view: ViewChange | None = None  # action "view": redraw, no model


TASKS = (
    "detect",
    "segment",
    "caption",
    "describe",
    "ocr",
    "answer",
    "question",
    "free",
)
GROUNDED_TASKS = ("detect", "segment")


class GeneratedText(str):
    """The model's decoded answer; a ``str`` that also carries generation facts.

    ``truncated`` is True when generation stopped at ``max_new_tokens`` before
    the end-of-sequence token; ``num_tokens`` counts the new tokens.
    """

    truncated: bool
    num_tokens: int

    def __new__(cls, text: str, *, truncated: bool = False, num_tokens: int = 0):
        obj = super().__new__(cls, text)
        obj.truncated = truncated
        obj.num_tokens = num_tokens
        return obj


DECODING_PRESETS: dict[str, dict[str, Any]] = {
    "greedy": {"do_sample": False},
    "nucleus 0.1": {"do_sample": True, "top_p": 0.1, "top_k": 0},
    "nucleus 0.3": {"do_sample": True, "top_p": 0.3, "top_k": 0},
    "temperature 0.5": {"do_sample": True, "temperature": 0.5, "top_k": 0},
}


@dataclass(frozen=True)
class Decoding:
    """Decoding options; ``max_new_tokens`` None means sized from the intent."""

    preset: str = "greedy"
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.preset not in DECODING_PRESETS:
            raise ValueError(
                f"decoding must be one of {sorted(DECODING_PRESETS)}, "
                f"got {self.preset!r}"
            )
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 2048:
            raise ValueError(
                f"max_new_tokens must be in 1..2048, got {self.max_new_tokens}"
            )

    def generate_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        return {"max_new_tokens": max_new_tokens, **DECODING_PRESETS[self.preset]}


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything one request produced, in original-image coordinates."""

    intent: Intent
    raw_text: str
    detections: tuple[Detection, ...]
    answer: str | None
    truncated: bool = False
    max_new_tokens: int = 0
    image_size_wh: tuple[int, int] = (0, 0)
    timings_s: dict[str, float] = field(default_factory=dict)
