"""Frozen values that cross module boundaries.

Conventions: boxes named ``box`` are normalised ``(x1, y1, x2, y2)`` floats in
[0, 1]; boxes named ``box_px`` are integer pixels of the *original* image;
``size_wh`` is ``(width, height)``; masks are ``(H, W)`` bool arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
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


@dataclass(frozen=True, eq=False, init=False)
class Detection:
    """One object placed on the original image; validates itself when built.

    Build it as ``Detection(label, box_px, mask)`` with ``mask`` an ``(H, W)``
    bool array in original image size (or None for boxes only), or directly
    from a crop: ``Detection(label, box_px, mask_crop=crop, mask_origin_xy=(x, y),
    image_wh=(W, H))``. Either way only the crop is kept, bit-packed
    (``mask_crop`` is ``(h, w)`` bool placed at ``mask_origin_xy`` on an
    ``image_wh`` image): 20 objects on a 40 MP photo cost 1/8 byte per pixel
    of their boxes, not 20 full-size masks. ``mask`` materialises the full
    ``(H, W)`` mask on each access, and ``mask_crop`` the crop: use them while
    drawing or writing a file; ``has_mask``, ``area`` are cheap.

    Raises ValueError (expected vs got) for an unordered or non-integer box,
    a mask that is not 2-D bool, or a crop outside its image.
    """

    label: str | None
    box_px: BoxPx
    mask_bits: np.ndarray | None  # np.packbits(crop, axis=1), uint8
    mask_crop_hw: tuple[int, int]
    mask_origin_xy: tuple[int, int]
    image_wh: tuple[int, int] | None

    def __init__(
        self,
        label: str | None,
        box_px: BoxPx,
        mask: np.ndarray | None = None,
        *,
        mask_crop: np.ndarray | None = None,
        mask_origin_xy: tuple[int, int] = (0, 0),
        image_wh: tuple[int, int] | None = None,
        mask_bits: np.ndarray | None = None,
        mask_crop_hw: tuple[int, int] = (0, 0),
    ) -> None:
        set_ = object.__setattr__
        set_(self, "label", label)
        set_(self, "box_px", _checked_box(box_px))
        if (mask is not None) + (mask_crop is not None) + (mask_bits is not None) > 1:
            raise ValueError("Detection takes a full mask or a mask_crop, got both")
        if mask is not None:
            _check_bool_2d(mask, "mask", "(H, W) bool in original image size")
            height, width = mask.shape
            mask_crop, mask_origin_xy = _tight_crop(mask)
            image_wh = (width, height)
        if mask_crop is not None:
            _check_bool_2d(mask_crop, "mask_crop", "(h, w) bool")
            mask_crop_hw = mask_crop.shape
            mask_bits = np.packbits(mask_crop, axis=1)
        set_(self, "mask_bits", mask_bits)
        set_(self, "mask_crop_hw", tuple(int(v) for v in mask_crop_hw))
        if mask_bits is None:
            set_(self, "mask_origin_xy", (0, 0))
            set_(self, "image_wh", image_wh and _checked_wh(image_wh))
            return
        if image_wh is None:
            raise ValueError("a mask_crop needs image_wh (width, height), got None")
        width, height = _checked_wh(image_wh)
        x0, y0 = (int(v) for v in mask_origin_xy)
        crop_h, crop_w = self.mask_crop_hw
        if x0 < 0 or y0 < 0 or x0 + crop_w > width or y0 + crop_h > height:
            raise ValueError(
                f"mask_crop {crop_w}x{crop_h} at {(x0, y0)} must lie inside the "
                f"{width}x{height} image, got it reaching {(x0 + crop_w, y0 + crop_h)}"
            )
        set_(self, "mask_origin_xy", (x0, y0))
        set_(self, "image_wh", (width, height))

    @property
    def has_mask(self) -> bool:
        return self.mask_bits is not None

    @property
    def mask_crop(self) -> np.ndarray | None:
        """The mask inside its crop, ``(h, w)`` bool (unpacked on each access)."""
        if self.mask_bits is None:
            return None
        crop_h, crop_w = self.mask_crop_hw
        unpacked = np.unpackbits(self.mask_bits, axis=1, count=crop_w)
        return unpacked.view(bool).reshape(crop_h, crop_w)

    @property
    def mask(self) -> np.ndarray | None:
        """The full ``(H, W)`` bool mask (a new array each call), or None."""
        crop = self.mask_crop
        if crop is None or self.image_wh is None:
            return None
        width, height = self.image_wh
        full = np.zeros((height, width), dtype=bool)
        x0, y0 = self.mask_origin_xy
        crop_h, crop_w = crop.shape
        full[y0 : y0 + crop_h, x0 : x0 + crop_w] = crop
        return full

    @property
    def area(self) -> int:
        """Mask area in pixels; the box area when there is no mask."""
        if self.mask_bits is not None:
            return int(np.bitwise_count(self.mask_bits).sum(dtype=np.int64))
        x1, y1, x2, y2 = self.box_px
        return (x2 - x1) * (y2 - y1)

    @property
    def mask_xyxy(self) -> BoxPx | None:
        """Tight ``(x1, y1, x2, y2)`` of the mask's pixels (exclusive ends);
        None without a mask or for an empty one."""
        crop = self.mask_crop
        if crop is None:
            return None
        rows = np.flatnonzero(crop.any(axis=1))
        if len(rows) == 0:
            return None
        cols = np.flatnonzero(crop.any(axis=0))
        x0, y0 = self.mask_origin_xy
        return (
            x0 + int(cols[0]),
            y0 + int(rows[0]),
            x0 + int(cols[-1]) + 1,
            y0 + int(rows[-1]) + 1,
        )


def _checked_box(box_px: object) -> BoxPx:
    try:
        values = tuple(box_px)  # type: ignore[arg-type]
        ints = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        ints, values = (), ()
    if len(ints) != 4 or any(int(v) != v for v in values):
        raise ValueError(
            "Detection box_px must be 4 integer pixels (x1, y1, x2, y2), "
            f"got {box_px!r}"
        )
    x1, y1, x2, y2 = ints
    if x2 < x1 or y2 < y1:
        raise ValueError(
            "Detection box_px must be ordered (x1 <= x2, y1 <= y2), "
            f"got {ints}; reorder the corners"
        )
    return ints  # type: ignore[return-value]


def _checked_wh(size_wh: object) -> tuple[int, int]:
    width, height = (int(v) for v in size_wh)  # type: ignore[union-attr]
    if width <= 0 or height <= 0:
        raise ValueError(f"image_wh must be positive (width, height), got {size_wh}")
    return width, height


def _check_bool_2d(array: object, name: str, expected: str) -> None:
    if not isinstance(array, np.ndarray):
        raise ValueError(
            f"Detection {name} must be {expected}, got {type(array).__name__}"
        )
    if array.ndim != 2 or array.dtype != np.bool_:
        raise ValueError(
            f"Detection {name} must be {expected}, got {array.shape} {array.dtype}"
        )


def _tight_crop(mask: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """The smallest crop of ``mask`` holding all its pixels, and its origin."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return np.zeros((0, 0), dtype=bool), (0, 0)
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return mask[y0:y1, x0:x1].copy(), (x0, y0)


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


class Action(StrEnum):
    """What a door does with an Intent: RUN the model (a model request), or
    one of the chat commands, answered without generating."""

    RUN = "run"  # the model request: task, targets, prompt, region
    CLARIFY = "clarify"  # say what to type (``message``)
    HELP = "help"  # the help text (``message``)
    UNDO = "undo"  # take back the last request
    EXPORT = "export"  # downloads of the current result ("all": every image)
    SELECT = "select"  # work on another image (``image_ref``)
    PICK_REGION = "pick_region"  # show the photo to drag a rectangle on
    VIEW = "view"  # redraw the last result (``view``), no model


@dataclass(frozen=True)
class ModelRequest:
    """What the model is asked: ``prompt`` exactly, on ``region`` of the photo
    ``image_ref`` names (None: the active one)."""

    task: str
    prompt: str
    targets: tuple[str, ...] = ()
    language: str = "en"
    region: Region | None = None
    image_ref: str | None = None


@dataclass(frozen=True)
class ChatCommand:
    """A chat command: ``action`` (never RUN) and what it acts on."""

    action: Action
    message: str | None = None  # CLARIFY / HELP: the text to show
    image_ref: str | None = None  # SELECT, EXPORT ("all"), VIEW: which image
    view: ViewChange | None = None  # VIEW: what to show or hide

    def __post_init__(self) -> None:
        if Action(self.action) is Action.RUN:
            raise ValueError("a ChatCommand is never Action.RUN: use ModelRequest")


@dataclass(frozen=True)
class Intent:
    """What the user asked for, as the exact prompt the model gets.

    ``task`` is one of TASKS; ``prompt`` is exactly the text given to the
    model. ``action`` (an Action; a plain string is checked and converted)
    says what the door does with it: RUN the model (``request`` is the model
    request) or answer a chat command without it (``command``).

    ``image_ref`` is None for the active image, "1", "2"... (1-based upload
    order), "last", "all", or a file name as typed. ``follows_previous`` is
    True when the intent was derived from the previous one; ``refinement``
    then says how: "add", "only", "remove", "switch", "repeat", "language",
    "instead" ("what about the bike?": the same task for other targets).
    """

    task: str
    prompt: str
    targets: tuple[str, ...] = ()
    language: str = "en"
    action: Action = Action.RUN
    message: str | None = None
    image_ref: str | None = None
    follows_previous: bool = False
    refinement: str | None = None
    region: Region | None = None  # look only at this part of the photo
    view: ViewChange | None = None  # action VIEW: redraw, no model
    then: str | None = None  # "detect"/"segment" the caption's names next
    per_object: str | None = None  # "caption": a caption per object found

    def __post_init__(self) -> None:
        try:
            action = Action(self.action)
        except ValueError:
            raise ValueError(
                f"action must be one of {[a.value for a in Action]}, "
                f"got {self.action!r}"
            ) from None
        object.__setattr__(self, "action", action)

    @property
    def runs_model(self) -> bool:
        """True for a model request, False for a chat command."""
        return self.action is Action.RUN

    @property
    def request(self) -> ModelRequest | None:
        """The model request this intent carries; None for a chat command."""
        if not self.runs_model:
            return None
        return ModelRequest(
            self.task,
            self.prompt,
            self.targets,
            self.language,
            self.region,
            self.image_ref,
        )

    @property
    def command(self) -> ChatCommand | None:
        """The chat command this intent carries; None for a model request."""
        if self.runs_model:
            return None
        return ChatCommand(self.action, self.message, self.image_ref, self.view)


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
    detections_dropped: int = 0  # objects beyond MAX_DETECTIONS, not kept
    caption: str | None = None  # composed: the caption whose names were found
    object_captions: tuple[str, ...] = ()  # composed: one per detection, in order
