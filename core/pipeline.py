"""From a request and an image to an AnalysisResult in original-image pixels.

Stages: intent -> generate (the only model call) -> parse -> decode masks
(one batched call) -> place on the original image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from core.errors import UserInputError
from core.geometry import box_to_pixels, mask_logits_to_crop
from core.intent.parse import parse_intent
from core.intent.region import region_to_pixels
from core.tokens import parse_objects, strip_tokens
from core.types import (
    GROUNDED_TASKS,
    AnalysisResult,
    BoxPx,
    Decoding,
    Detection,
    Intent,
    ParsedObject,
    Region,
)

logger = logging.getLogger(__name__)

TOKENS_PER_BOX = 7  # 4 locs + a short label + " ;"
TOKENS_PER_MASK = 21  # 4 locs + 16 segs + label
INSTANCES_PER_TARGET = 4  # "car" may match several cars
SLACK_TOKENS = 8
MAX_BUDGET = 1024
TEXT_BUDGETS = {"caption": 64, "describe": 192, "ocr": 128, "answer": 64}
DEFAULT_TEXT_BUDGET = 96
MAX_DETECTIONS = 100  # objects kept per image (MAX_DETECTIONS setting)


class VisionModel(Protocol):
    """What analyze() needs of a model: the ModelManager or a test double."""

    def generate(self, image: Image.Image, prompt: str, **decoding: Any) -> str: ...

    def decode_masks(self, seg_indices: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CancellableModel:
    """``model`` whose every ``generate`` stops once ``cancel`` is set (the
    engine raises RequestCancelledError), for code that calls ``analyze``."""

    model: VisionModel
    cancel: threading.Event

    def generate(self, image: Image.Image, prompt: str, **decoding: Any) -> str:
        return self.model.generate(image, prompt, cancel=self.cancel, **decoding)

    def decode_masks(self, seg_indices: np.ndarray) -> np.ndarray:
        return self.model.decode_masks(seg_indices)

    @property
    def batch_max(self) -> int:
        """The wrapped engine's batch size (core.tiling runs tiles that wide)."""
        return getattr(self.model, "batch_max", 1)


def token_budget(intent: Intent) -> int:
    """max_new_tokens sized from the task and the number of targets.

    Generation stops at EOS, so the budget is a cap against run-away answers,
    not a cost: about 7 tokens per box and 21 per mask, a few instances each.
    """
    if intent.task in GROUNDED_TASKS:
        per_object = TOKENS_PER_MASK if intent.task == "segment" else TOKENS_PER_BOX
        targets = max(1, len(intent.targets))
        budget = per_object * INSTANCES_PER_TARGET * targets + SLACK_TOKENS
        return min(budget, MAX_BUDGET)
    return TEXT_BUDGETS.get(intent.task, DEFAULT_TEXT_BUDGET)


def analyze(
    image: Image.Image,
    request: str | Intent,
    model: VisionModel,
    state: Intent | None = None,
    *,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    cancel: threading.Event | None = None,
    max_detections: int = MAX_DETECTIONS,
) -> AnalysisResult:
    """Run one request on ``image`` (RGB, original size).

    ``request`` is chat text or an already parsed Intent; ``state`` is the
    previous Intent of the conversation, used to resolve refinements.
    ``max_new_tokens`` (e.g. from settings) overrides the automatic budget;
    ``decoding.max_new_tokens`` overrides both. ``cancel``: see generate.
    At most ``max_detections`` objects are kept (the rest counted in
    ``result.detections_dropped``).
    Raises UserInputError when the request does not ask the model to run.
    """
    intent = to_intent(request, state)
    generation = generate(image, intent, model, decoding, max_new_tokens, None, cancel)
    return build_result(image.size, generation, model, max_detections=max_detections)


@dataclass(frozen=True)
class Generation:
    """The model's answer to one intent, before parsing."""

    intent: Intent
    raw_text: str
    truncated: bool
    max_new_tokens: int
    generate_s: float
    crop_px: BoxPx | None = None  # the model saw only this part (intent.region)


def to_intent(request: str | Intent, state: Intent | None = None) -> Intent:
    """The Intent to run; raises UserInputError when it does not run the model."""
    intent = request if isinstance(request, Intent) else parse_intent(request, state)
    if not intent.runs_model:
        raise UserInputError(intent.message or "Tell me what to look for in the image.")
    return intent


def generate(
    image: Image.Image,
    intent: Intent,
    model: VisionModel,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_text: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    source_wh: tuple[int, int] | None = None,
) -> Generation:
    """The only stage that runs the language model.

    ``on_text`` receives the answer as it is generated (on the model thread).
    ``source_wh`` is the original photo's size when ``image`` is a smaller
    copy of it (the chat's model input or display copy); None: ``image`` is
    the original. With ``intent.region`` the model sees only that part of the
    photo (``Generation.crop_px``, in original pixels); build_result puts the
    answer back on the photo. Raises UserInputError when the region lies
    outside the photo.
    Setting ``cancel`` stops the model at its next token (the engine then
    raises RequestCancelledError).
    """
    crop_px = None
    if intent.region is not None:
        width, height = source_wh or image.size
        crop_px = region_on_photo(intent.region, (width, height))
        sx, sy = image.width / width, image.height / height
        x1, y1, x2, y2 = crop_px
        image = image.crop(
            (round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy))
        )
    decoding = decoding or Decoding()
    budget = decoding.max_new_tokens or max_new_tokens or token_budget(intent)
    kwargs = decoding.generate_kwargs(budget)
    if on_text is not None:
        kwargs["on_text"] = on_text
    if cancel is not None:
        kwargs["cancel"] = cancel
    start = time.perf_counter()
    raw = model.generate(image, intent.prompt, **kwargs)
    elapsed = time.perf_counter() - start
    truncated = bool(getattr(raw, "truncated", False))
    if truncated:
        logger.warning("answer cut at max_new_tokens=%d: %r", budget, intent.prompt)
    return Generation(intent, str(raw), truncated, budget, elapsed, crop_px)


def region_on_photo(region: Region, size_wh: tuple[int, int]) -> BoxPx:
    """``region`` in pixels of a ``size_wh`` photo (clipped to it); a
    UserInputError saying how to give one when nothing of it is on the photo."""
    try:
        return region_to_pixels(region, size_wh)
    except ValueError as exc:
        width, height = size_wh
        raise UserInputError(
            f"That region is not on this photo ({exc}); give it in pixels of "
            f"the {width}x{height} photo, e.g. "
            "'region 100,200 to 600,700', or say 'zoom out'."
        ) from exc


def build_result(
    size_wh: tuple[int, int],
    generation: Generation,
    model: VisionModel,
    *,
    max_detections: int = MAX_DETECTIONS,
) -> AnalysisResult:
    """Parse the answer, decode masks in one batch, place them as box crops.

    ``size_wh`` is the original image's size: boxes and masks are in its
    pixels whatever size the model saw. Objects beyond ``max_detections``
    are dropped (counted in ``detections_dropped``, logged) before any mask
    is decoded: each one costs a mask of its box size.
    """
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}")
    intent = generation.intent
    grounded = intent.task in GROUNDED_TASKS
    start = time.perf_counter()
    objects = parse_objects(generation.raw_text) if grounded else []
    dropped = max(0, len(objects) - max_detections)
    if dropped:
        logger.warning(
            "kept %d of %d objects (MAX_DETECTIONS=%d)",
            max_detections,
            len(objects),
            max_detections,
        )
        objects = objects[:max_detections]
    timings = {"generate": generation.generate_s, "parse": time.perf_counter() - start}
    crop = generation.crop_px
    seen_wh = (crop[2] - crop[0], crop[3] - crop[1]) if crop else size_wh
    detections, mask_timings = place_objects(objects, seen_wh, model)
    if crop is not None:
        detections = shift_detections(detections, crop[:2], size_wh)
    timings.update(mask_timings)
    return AnalysisResult(
        intent=intent,
        raw_text=generation.raw_text,
        detections=tuple(detections),
        answer=None if grounded else strip_tokens(generation.raw_text),
        truncated=generation.truncated,
        max_new_tokens=generation.max_new_tokens,
        image_size_wh=size_wh,
        timings_s=timings,
        detections_dropped=dropped,
    )


def place_objects(
    objects: list[ParsedObject], size_wh: tuple[int, int], model: VisionModel
) -> tuple[list[Detection], dict[str, float]]:
    """Boxes to pixels; all masks decoded in one batch, kept as box crops."""
    start = time.perf_counter()
    with_masks = [o for o in objects if o.seg_indices is not None]
    logits = None
    if with_masks:
        seg_indices = np.array([o.seg_indices for o in with_masks], dtype=np.int32)
        logits = np.asarray(model.decode_masks(seg_indices))
    decode_s = time.perf_counter() - start

    start = time.perf_counter()
    detections = []
    mask_row = 0
    for obj in objects:
        box_px = box_to_pixels(obj.box, size_wh)
        crop = None
        if obj.seg_indices is not None and logits is not None:
            crop = mask_logits_to_crop(logits[mask_row], box_px)
            mask_row += 1
        detections.append(
            Detection(
                obj.label,
                box_px,
                mask_crop=crop,
                mask_origin_xy=box_px[:2],
                image_wh=size_wh,
            )
        )
    timings = {"decode_masks": decode_s, "place": time.perf_counter() - start}
    return detections, timings


def shift_detections(
    detections: list[Detection], offset_xy: tuple[int, int], size_wh: tuple[int, int]
) -> list[Detection]:
    """Detections on a crop at ``offset_xy`` -> the same on the ``size_wh`` photo.

    Boxes and mask crops move by the offset; no full-size mask is made.
    """
    dx, dy = offset_xy
    moved = []
    for det in detections:
        x1, y1, x2, y2 = det.box_px
        box = (x1 + dx, y1 + dy, x2 + dx, y2 + dy)
        if not det.has_mask:
            moved.append(Detection(det.label, box, image_wh=size_wh))
            continue
        ox, oy = det.mask_origin_xy
        moved.append(
            Detection(
                det.label,
                box,
                mask_bits=det.mask_bits,
                mask_crop_hw=det.mask_crop_hw,
                mask_origin_xy=(ox + dx, oy + dy),
                image_wh=size_wh,
            )
        )
    return moved


def scale_detections(
    detections: list[Detection] | tuple[Detection, ...],
    from_wh: tuple[int, int],
    to_wh: tuple[int, int],
) -> list[Detection]:
    """Detections measured on a ``from_wh`` copy of a photo -> on its ``to_wh``
    original (e.g. tiles run on the chat's display copy).

    Box edges scale and round to whole pixels; each mask crop is resized
    (nearest) to its scaled crop rectangle, so no full-size mask is made.
    """
    sx, sy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    width, height = to_wh

    def edges(x1: float, y1: float, x2: float, y2: float) -> tuple[int, ...]:
        return (
            min(width, max(0, round(x1 * sx))),
            min(height, max(0, round(y1 * sy))),
            min(width, max(0, round(x2 * sx))),
            min(height, max(0, round(y2 * sy))),
        )

    scaled = []
    for det in detections:
        box = edges(*det.box_px)
        if not det.has_mask:
            scaled.append(Detection(det.label, box, image_wh=to_wh))
            continue
        (ox, oy), (crop_h, crop_w) = det.mask_origin_xy, det.mask_crop_hw
        x1, y1, x2, y2 = edges(ox, oy, ox + crop_w, oy + crop_h)
        crop = Image.fromarray(det.mask_crop).resize(
            (max(1, x2 - x1), max(1, y2 - y1)), Image.Resampling.NEAREST
        )
        scaled.append(
            Detection(
                det.label,
                box,
                mask_crop=np.asarray(crop, dtype=bool),
                mask_origin_xy=(min(x1, width - 1), min(y1, height - 1)),
                image_wh=to_wh,
            )
        )
    return scaled
