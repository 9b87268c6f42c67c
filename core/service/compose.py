"""Composed requests: PaliGemma's own tasks chained through the service.

"Everything in the photo" (``Intent.then``): ``caption en`` first, the
things it names (core.intent.nouns) then found with one ``detect a ; b``
(or ``segment``). "A caption per object" (``Intent.per_object``): each
object found gets ``caption en`` on its crop (padded by CROP_PAD, clipped to
the photo), all of them in one turn of the model queue, at most the
engine's batch size at once, like tiles. Each step is charged to the
request's client before it runs, as every other model run.

Doors call ``Services.run`` (which lands here for a composed job); the chat
calls the steps one by one to show each in its own step.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from PIL import Image

from core.engine.base import Engine
from core.intent.nouns import caption_nouns
from core.intent.text import run_intent
from core.pipeline import CancellableModel, VisionModel, generate
from core.service.options import Hooks, Job, Picture
from core.tiling import batch_workers
from core.types import AnalysisResult, BoxPx, Decoding, Detection, Intent

logger = logging.getLogger(__name__)


class Services(Protocol):
    """What the steps use of core.service.Services (which imports this)."""

    limiter: Any
    queue: Any

    async def run(
        self, job: Job, picture: Picture, hooks: Hooks | None, engine: Engine | None
    ) -> AnalysisResult: ...

    def prepare(self, request: Intent, options: Any, client: str, **kw: Any) -> Job: ...


CROP_PAD = 0.1  # a crop is its box grown by this share of its size on each side
CAPTION = run_intent("caption")  # the prompt each crop gets: "caption en"


def composed(intent: Intent) -> bool:
    """Whether ``intent`` chains several model runs (``then``/``per_object``)."""
    return bool(intent.then or intent.per_object)


def plain(job: Job) -> Job:
    """``job`` as one model run: its own prompt, no steps after it."""
    return replace(job, intent=replace(job.intent, then=None, per_object=None))


async def run_composed(
    services: Services, job: Job, picture: Picture, hooks: Hooks, engine: Engine
) -> AnalysisResult:
    """``job``'s steps on ``picture``: caption -> names -> detect/segment
    when ``then``; the plain request otherwise; then the captions per object
    when ``per_object``. The result's intent is the detect/segment one."""
    result = await services.run(plain(job), picture, hooks, engine)
    if job.intent.then:
        names = names_job(services, job, result.answer or "", picture)
        if names is None:
            return no_names(result)
        grounded = await services.run(names, picture, hooks, engine)
        result = replace(grounded, caption=result.answer)
    if job.intent.per_object and result.detections:
        captions = await caption_objects(
            services, job, picture, result.detections, hooks, engine
        )
        result = replace(result, object_captions=captions)
    return result


def names_job(
    services: Services, job: Job, caption: str, picture: Picture
) -> Job | None:
    """The ``then`` step: ``detect``/``segment`` of the things ``caption``
    names, charged to ``job``'s client (429 past the limit); None when it
    names nothing."""
    names = caption_nouns(caption)
    logger.info("caption %r names %s", caption, names)
    if not names:
        return None
    intent = run_intent(job.intent.then or "detect", names)
    return services.prepare(
        intent,
        job.options,
        job.client,
        sizes=[picture.original_wh],
        turn=job.turn,
        kind=job.kind,
        cap=job.cap,
    )


NO_NAMES = (
    "The caption names nothing I can look for, so nothing was detected. "
    "Name the things yourself, e.g. “detect dog ; ball”."
)


def no_names(caption_result: AnalysisResult) -> AnalysisResult:
    """The caption's result, saying that it named nothing to detect."""
    return replace(caption_result, caption=caption_result.answer or "", answer=NO_NAMES)


async def caption_objects(
    services: Services,
    job: Job,
    picture: Picture,
    detections: tuple[Detection, ...],
    hooks: Hooks,
    engine: Engine,
) -> tuple[str, ...]:
    """``caption en`` on each object's padded crop, in one turn of the queue
    (charged first: one run per object); one caption per detection."""
    boxes = [crop_box(d.box_px, picture.original_wh) for d in detections]
    options = job.options
    services.admit(job.client, options.cost(CAPTION, images=len(boxes)))
    cancel = hooks.cancel or threading.Event()
    return await services.queue.submit(
        caption_crops,
        picture.sharp or picture.image,
        boxes,
        CancellableModel(engine, cancel),
        source_wh=picture.original_wh,
        decoding=options.decoding,
        max_new_tokens=options.budget(CAPTION),
        cancel=cancel,
        client=job.turn,
        kind=job.kind,
        cap=job.cap,
        on_position=hooks.on_position,
    )


def crop_box(box_px: BoxPx, size_wh: tuple[int, int], pad: float = CROP_PAD) -> BoxPx:
    """``box_px`` grown by ``pad`` of its width and height on each side,
    clipped to a ``size_wh`` photo; at least one pixel wide and high."""
    width, height = size_wh
    x1, y1, x2, y2 = box_px
    dx, dy = round((x2 - x1) * pad), round((y2 - y1) * pad)
    left, top = max(0, x1 - dx), max(0, y1 - dy)
    right, bottom = min(width, x2 + dx), min(height, y2 + dy)
    return left, top, max(right, left + 1), max(bottom, top + 1)


def caption_crops(
    image: Image.Image,
    boxes: list[BoxPx],
    model: VisionModel,
    *,
    source_wh: tuple[int, int],
    decoding: Decoding | None = None,
    max_new_tokens: int | None = None,
    cancel: threading.Event | None = None,
) -> tuple[str, ...]:
    """On the model worker: ``caption en`` of each box (pixels of a
    ``source_wh`` photo) cut from ``image``, ``batch_workers`` at a time."""
    scale = image.width / source_wh[0], image.height / source_wh[1]

    def look(box: BoxPx) -> str:
        x1, y1, x2, y2 = box
        edges = (x1 * scale[0], y1 * scale[1], x2 * scale[0], y2 * scale[1])
        crop = image.crop(tuple(round(v) for v in edges))
        answer = generate(crop, CAPTION, model, decoding, max_new_tokens, None, cancel)
        return answer.raw_text.strip()

    width = min(batch_workers(model), len(boxes))
    if width <= 1:
        return tuple(map(look, boxes))
    with ThreadPoolExecutor(width, thread_name_prefix="crop") as pool:
        return tuple(pool.map(look, boxes))
