"""One request over many photos: one BatchItem each, a failure never stops
the others. The one per-image failure rule for the REST API, the CLI and the
batch helpers (core.batch keeps the item type and its exports)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from core.batch import INTERNAL_ERROR, UNREADABLE_FILE, BatchItem, ProgressCallback
from core.config import Settings
from core.engine.base import Engine
from core.engine.queue import ModelQueue
from core.errors import AppError
from core.images import load_image
from core.pipeline import MAX_DETECTIONS, VisionModel
from core.service.options import Job, Picture
from core.service.services import Services
from core.tiling import TileSpec
from core.types import AnalysisResult, Decoding, Intent

logger = logging.getLogger(__name__)

Data = bytes | str | Path | Callable[[], Awaitable[bytes]]
Guard = Callable[[Awaitable[AnalysisResult]], Awaitable[AnalysisResult]]


async def run_one(
    services: Services,
    job: Job,
    name: str,
    data: Data,
    *,
    engine: Engine | None = None,
    keep_image: bool = False,
    max_bytes: int | None = None,
    guard: Guard | None = None,
) -> tuple[BatchItem, AppError | None]:
    """One photo of a batch: its BatchItem and its error (None when it worked).

    Never raises for this photo's own failures (unreadable file, bad bytes,
    too many pixels, busy, loading, a model error): they are recorded in the
    item, with the AppError kept so a door can answer with its status when
    every photo failed. ``guard`` wraps the run (e.g. cancel on hang-up).
    ``result.timings_s`` gains ``load_image`` and ``queue_and_model``.
    """
    start = time.perf_counter()
    image: Image.Image | None = None
    try:
        raw = await _read(data)
        image = await asyncio.to_thread(
            load_image,
            raw,
            max_pixels=services.settings.max_image_pixels,
            max_bytes=max_bytes,
        )
        loaded = time.perf_counter()
        work = services.run(job, Picture(image), engine=engine)
        result = await (guard(work) if guard is not None else work)
    except OSError as exc:
        logger.info("batch: cannot read %s: %s", name, exc)
        reason = exc.strerror or type(exc).__name__
        error = AppError(f"The file could not be read ({reason}).")
        error.code = UNREADABLE_FILE
    except AppError as exc:
        logger.info("batch: %s failed: %s", name, exc.message)
        error = exc
    except Exception as exc:  # one bad photo must not lose the others
        logger.exception("batch: unexpected error on %s", name)
        error = AppError(
            f"Unexpected error while analysing this image ({type(exc).__name__})."
        )
        error.code = INTERNAL_ERROR
    else:
        now = time.perf_counter()
        timings = {"load_image": loaded - start, "queue_and_model": now - loaded}
        result = replace(result, timings_s={**result.timings_s, **timings})
        kept = image if keep_image else None
        return BatchItem(
            name, image.size, result, seconds=now - start, image=kept
        ), None
    size = image.size if image is not None else None
    seconds = time.perf_counter() - start
    item = BatchItem(name, size, None, error.message, error.code, seconds, image)
    return item, error


async def _read(data: Data) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if callable(data):
        return await data()
    return await asyncio.to_thread(Path(data).read_bytes)


async def run_many(
    services: Services,
    job: Job,
    sources: Sequence[tuple[str, Data]],
    **options: Any,
) -> tuple[list[BatchItem], list[AppError]]:
    """``run_one`` on each source in order; the items and the errors met."""
    items, errors = [], []
    for name, data in sources:
        item, error = await run_one(services, job, name, data, **options)
        items.append(item)
        if error is not None:
            errors.append(error)
    return items, errors


def iter_items(
    services: Services,
    job: Job,
    sources: Sequence[tuple[str, Data]],
    *,
    engine: Engine | None = None,
    keep_images: bool = True,
    max_bytes: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Iterator[BatchItem]:
    """``run_one`` for callers without an event loop (the CLI): one photo per
    step, each on a loop of its own; ``on_progress(done, total, name)`` after
    each item, before it is yielded."""
    total = len(sources)
    for done, (name, data) in enumerate(sources, start=1):
        item, _ = asyncio.run(
            run_one(
                services,
                job,
                name,
                data,
                engine=engine,
                keep_image=keep_images,
                max_bytes=max_bytes,
            )
        )
        if on_progress is not None:
            on_progress(done, total, name)
        yield item


def iter_batch(
    sources: Sequence[tuple[str, Data]],
    request: str | Intent,
    model: VisionModel,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    on_progress: ProgressCallback | None = None,
    keep_images: bool = True,
    tiles: TileSpec = "off",
    max_detections: int = MAX_DETECTIONS,
) -> Iterator[BatchItem]:
    """``request`` on each source with ``model`` alone (no rate limit): a
    throwaway Services around it. UserInputError on the first step when the
    request does not run the model."""
    settings = Settings(
        max_image_pixels=max_pixels,
        max_new_tokens=max_new_tokens,
        max_detections=max_detections,
        rate_limit_per_min=0,
        load_on_start=False,
    )
    queue = ModelQueue(max_pending=1, timeout_s=settings.request_timeout_s)
    services = Services.build(settings, model, queue)
    job = services.prepare(request, services.options(decoding, tiles), "local")
    try:
        yield from iter_items(
            services,
            job,
            sources,
            engine=model,
            keep_images=keep_images,
            max_bytes=max_bytes,
            on_progress=on_progress,
        )
    finally:
        queue.shutdown()


def analyze_batch(
    sources: Sequence[tuple[str, Data]], request: str | Intent, model, **options
) -> list[BatchItem]:
    """``iter_batch`` collected into a list, in the order of ``sources``."""
    return list(iter_batch(sources, request, model, **options))
