""" "Look closely" in the chat: detect/segment on tiles of a big photo.

With the setting on, a detect/segment request on a photo longer than
``core.tiling.AUTO_TILE_PX`` runs on the whole photo plus overlapping tiles
(core.tiling, the REST API's ``tiles=auto``), one queue job whose step shows
"tile 3 of 9" as it goes. Tiles are cut from the display copy (at most 2048
px, still 4-9x the model's input per tile) and the merged objects are scaled
to the original's pixels. The turn keeps its objects (core.kept): undo,
export and redraw rebuild it from them, not from one answer text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import chainlit as cl

from chat.options import ChatOptions
from chat.photos import Photo
from chat.runs import CHAT_PER_SESSION, chat_client
from chat.services import ChatServices
from core.conversation import ImageRecord, ResultSummary, Turn
from core.engine.queue import CHAT, Place
from core.errors import UserInputError
from core.kept import keep_objects, restore_objects
from core.pipeline import CancellableModel, region_on_photo, scale_detections
from core.security import code_block_safe
from core.tiling import analyze_tiled, tile_grid, tile_looks
from core.types import GROUNDED_TASKS, AnalysisResult, Decoding, Intent, Region


def look_grid(
    options: ChatOptions, intent: Intent, size_wh: tuple[int, int]
) -> tuple[int, int]:
    """Tile (columns, rows) for ``intent`` on a ``size_wh`` photo; (1, 1): none.

    Tiles only with "look closely" on, for detect/segment, and only where the
    photo (or its region) is bigger than a tile.
    """
    if not options.look_closely or intent.task not in GROUNDED_TASKS:
        return 1, 1
    if intent.region is not None:
        x1, y1, x2, y2 = region_on_photo(intent.region, size_wh)
        size_wh = (x2 - x1, y2 - y1)
    return tile_grid("auto", size_wh)


def looks(options: ChatOptions, intent: Intent, size_wh: tuple[int, int]) -> int:
    """Model runs one request costs on a photo: 1, or tiles + the whole photo."""
    return tile_looks(look_grid(options, intent, size_wh), intent)


def tile_text(number: int, total: int) -> str:
    """Progress of look ``number`` of ``total`` (the whole photo, then tiles)."""
    if number <= 1:
        return f"whole photo first, then {total - 1} tiles"
    return f"tile {number - 1} of {total - 1}"


class Pump:
    """Hands values from a model thread to ``consume`` on the event loop, in
    order, inside the session's context (Chainlit's emitter lives there)."""

    def __init__(self, consume: Callable[[Any], Awaitable[None]]) -> None:
        self._consume = consume
        self._loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    def put(self, item: Any) -> None:
        """Thread-safe: queue ``item`` for ``consume``."""
        self._loop.call_soon_threadsafe(self._items.put_nowait, (item,))

    async def close(self) -> None:
        """Wait until every queued item is consumed."""
        self._items.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while (entry := await self._items.get()) is not None:
            await self._consume(entry[0])


async def look_closely(
    services: ChatServices,
    engine: Any,
    record: ImageRecord,
    photo: Photo,
    intent: Intent,
    decoding: Decoding,
    grid: tuple[int, int],
    stop,
    show_position: Callable[[Place], Awaitable[None]],
) -> AnalysisResult:
    """Run ``intent`` on the whole photo and ``grid`` tiles; objects in the
    original's pixels. A "looking closely" step shows each tile as it starts."""
    display = photo.display
    tiled_intent = intent
    if intent.region is not None:  # the region, as a fraction of any copy
        x1, y1, x2, y2 = region_on_photo(intent.region, record.size_wh)
        width, height = record.size_wh
        fraction = (x1 / width, y1 / height, x2 / width, y2 / height)
        tiled_intent = replace(intent, region=Region("fraction", fraction))
    columns, rows = grid
    async with cl.Step(
        name="looking closely", type="llm", show_input="text", language="text"
    ) as step:
        step.input = code_block_safe(intent.prompt)

        async def show(progress: tuple[int, int]) -> None:
            step.output = tile_text(*progress)
            await step.update()

        pump = Pump(show)
        try:
            result = await services.queue.submit(
                analyze_tiled,
                display,
                tiled_intent,
                CancellableModel(engine, stop),
                grid,
                decoding=decoding,
                max_new_tokens=services.settings.max_new_tokens,
                on_tile=lambda number, total: pump.put((number, total)),
                max_detections=services.settings.max_detections,
                client=chat_client(),
                kind=CHAT,
                cap=CHAT_PER_SESSION,
                cancel=stop,
                on_position=show_position,
            )
        finally:
            await pump.close()
        detections = await asyncio.to_thread(
            scale_detections, result.detections, display.size, record.size_wh
        )
        step.output = (
            f"{len(detections)} object(s) from the whole photo and "
            f"{columns}x{rows} = {columns * rows} tiles"
        )
    return replace(
        result,
        intent=intent,
        detections=tuple(detections),
        image_size_wh=record.size_wh,
    )


def tiled_summary(result: AnalysisResult) -> ResultSummary:
    """The turn's summary with its merged objects kept (core.kept)."""
    summary = ResultSummary.from_result(result)
    tiles = int(result.timings_s.get("tiles", 0))
    return replace(summary, tiles=tiles, objects=keep_objects(result.detections))


def kept_result(turn: Turn, record: ImageRecord, max_pixels: int) -> AnalysisResult:
    """A "look closely" turn again, from its kept objects (no model, no VAE).

    Raises UserInputError when the kept objects cannot be read back (a saved
    state from elsewhere or edited by hand, a photo over ``max_pixels``:
    MAX_IMAGE_PIXELS), before any mask is decoded.
    """
    try:
        detections = restore_objects(
            turn.summary.objects, record.size_wh, max_pixels=max_pixels
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
        image_size_wh=record.size_wh,
        timings_s={"tiles": float(turn.summary.tiles)},
    )
