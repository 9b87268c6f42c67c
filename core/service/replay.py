"""A kept turn's result again, without the model: undo, redraw, export."""

from __future__ import annotations

from dataclasses import replace

from core.conversation import Turn
from core.errors import UserInputError
from core.intent.region import region_to_pixels
from core.kept import restore_objects
from core.pipeline import MAX_DETECTIONS, Generation, VisionModel
from core.tiling import place_looks
from core.types import AnalysisResult


def replay_turn(
    turn: Turn,
    size_wh: tuple[int, int],
    model: VisionModel,
    *,
    max_pixels: int,
    max_detections: int = MAX_DETECTIONS,
) -> AnalysisResult:
    """``turn`` on its ``size_wh`` photo again: a tiled turn from its kept
    objects (``kept_result``), any other from its kept answer text (its masks
    decoded again by ``model``), with a composed turn's captions."""
    if turn.summary.tiles:
        return kept_result(turn, size_wh, max_pixels)
    result = _from_text(turn, size_wh, model, max_detections)
    return replace(
        result, caption=turn.summary.caption, object_captions=turn.summary.captions
    )


def _from_text(
    turn: Turn, size_wh: tuple[int, int], model: VisionModel, max_detections: int
) -> AnalysisResult:
    region = turn.intent.region
    generation = Generation(
        turn.intent,
        turn.summary.raw_text,
        turn.summary.truncated,
        0,
        0.0,
        region_to_pixels(region, size_wh) if region is not None else None,
    )
    return place_looks(size_wh, [generation], model, max_detections=max_detections)


def kept_result(
    turn: Turn, size_wh: tuple[int, int], max_pixels: int
) -> AnalysisResult:
    """A "look closely" turn again, from its kept objects (no model, no VAE).

    Raises UserInputError when the kept objects cannot be read back (a saved
    state from elsewhere or edited by hand, a photo over ``max_pixels``:
    MAX_IMAGE_PIXELS), before any mask is decoded.
    """
    try:
        detections = restore_objects(
            turn.summary.objects, size_wh, max_pixels=max_pixels
        )
    except ValueError as exc:
        raise UserInputError(
            f"The objects of that answer could not be read back ({exc}); ask again."
        ) from exc
    return AnalysisResult(
        intent=turn.intent,
        raw_text=turn.summary.raw_text,
        detections=detections,
        answer=None,
        truncated=turn.summary.truncated,
        image_size_wh=size_wh,
        timings_s={"tiles": float(turn.summary.tiles)},
    )
