""" "Look closely" in the chat: detect/segment on tiles of a big photo.

With the setting on, a detect/segment request on a photo longer than
``AUTO_TILE_PX`` runs on the whole photo plus overlapping tiles (the REST
API's ``tiles=auto``; core.service), one queue job whose step shows "tile 3
of 9" as it goes. Tiles are cut from the display copy (at most 2048 px, still
4-9x the model's input per tile) and every object is placed on the original's
pixels beside the queue. The turn keeps its objects (core.kept): undo, export
and redraw rebuild it from them, not from one answer text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import chainlit as cl

from chat.options import ChatOptions
from chat.services import ChatServices
from core.conversation import ResultSummary
from core.engine.queue import Place
from core.kept import keep_objects
from core.security import code_block_safe
from core.service import Hooks, Job, Picture, RunOptions
from core.types import AnalysisResult, Intent


def look_grid(
    options: ChatOptions, intent: Intent, size_wh: tuple[int, int]
) -> tuple[int, int]:
    """Tile (columns, rows) for ``intent`` on a ``size_wh`` photo; (1, 1): none.

    Tiles only with "look closely" on, for detect/segment, and only where the
    photo (or its region) is bigger than a tile (RunOptions.grid).
    """
    return RunOptions(tiles="auto" if options.look_closely else "off").grid(
        intent, size_wh
    )


def looks(options: ChatOptions, intent: Intent, size_wh: tuple[int, int]) -> int:
    """Model runs one request costs on a photo: 1, or tiles + the whole photo."""
    tiles = "auto" if options.look_closely else "off"
    return RunOptions(tiles=tiles).looks(intent, size_wh)


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
    job: Job,
    picture: Picture,
    show_position: Callable[[Place], Awaitable[None]],
) -> AnalysisResult:
    """Run ``job`` on the whole photo and its tiles (core.service: generated
    in the queue, placed beside it); objects in the original's pixels. A
    "looking closely" step shows each tile as it starts."""
    columns, rows = job.options.grid(job.intent, picture.original_wh)
    async with cl.Step(
        name="looking closely", type="llm", show_input="text", language="text"
    ) as step:
        step.input = code_block_safe(job.intent.prompt)

        async def show(progress: tuple[int, int]) -> None:
            step.output = tile_text(*progress)
            await step.update()

        pump = Pump(show)
        hooks = Hooks(
            on_tile=lambda number, total: pump.put((number, total)),
            on_position=show_position,
        )
        try:
            looks = await services.service.generate(job, picture, hooks, engine)
        finally:
            await pump.close()
        result = await services.service.place(job, looks, engine)
        step.output = (
            f"{len(result.detections)} object(s) from the whole photo and "
            f"{columns}x{rows} = {columns * rows} tiles"
        )
    return result


def tiled_summary(result: AnalysisResult) -> ResultSummary:
    """The turn's summary with its merged objects kept (core.kept)."""
    summary = ResultSummary.from_result(result)
    tiles = int(result.timings_s.get("tiles", 0))
    return replace(summary, tiles=tiles, objects=keep_objects(result.detections))
