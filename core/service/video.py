"""A clip through the service: each sampled frame is one job run in the model
queue (like a photo), its objects linked to the previous frames' (track ids),
its overlay appended to the annotated clip; then the frame is dropped.

The doors call ``probe`` (limits, the sampling plan), charge
``info.frames`` photos with ``Services.prepare(..., images=info.frames)``,
then ``run_clip``. Stop (a cancelled task, or ``hooks.cancel``) ends it
between frames or inside the model, like any other run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from PIL import Image

from core.config import Settings
from core.engine.base import Engine
from core.errors import RequestCancelledError
from core.export.masks import mask_to_rle
from core.render import render_overlay
from core.service.options import Hooks, Job, Picture
from core.service.services import Services
from core.types import AnalysisResult
from core.video.clip import ClipInfo, SampledFrame, probe_clip, sample_frames
from core.video.encode import ClipWriter
from core.video.track import FrameResult, TrackedObject, Tracker, VideoResult

logger = logging.getLogger(__name__)

FrameProgress = Callable[[int, int], Awaitable[object]]  # (frame n, of total)
FrameDone = Callable[[FrameResult], Awaitable[object]]  # one frame's answer


def probe(path: Path, settings: Settings) -> ClipInfo:
    """The clip's limits checked and its sampling plan (core.video.clip)."""
    return probe_clip(path, settings)


async def run_clip(
    services: Services,
    job: Job,
    path: Path,
    info: ClipInfo,
    *,
    video_out: Path | None = None,
    hooks: Hooks | None = None,
    on_frame: FrameProgress | None = None,
    on_result: FrameDone | None = None,
    engine: Engine | None = None,
) -> VideoResult:
    """``job`` on every sampled frame of the clip at ``path``, streamed: one
    decoded frame at a time. The annotated clip goes to ``video_out``
    (None: not written). ``on_frame(n, total)`` before frame n runs,
    ``on_result(frame)`` once it is answered."""
    engine = engine or await services.ready(job.options.model, wait=False)
    hooks = hooks or Hooks()
    cancel = hooks.cancel or threading.Event()
    hooks = replace(hooks, cancel=cancel)
    result = VideoResult(job.intent, info)
    tracker = Tracker()
    frames = sample_frames(path, info)
    writer = ClipWriter(video_out, info.size_wh, info.sample_fps) if video_out else None
    try:
        while not cancel.is_set():
            sampled = await asyncio.to_thread(next, frames, None)
            if sampled is None:
                break
            if on_frame is not None:
                await on_frame(sampled.index, info.frames)
            answer = await _run_frame(services, job, sampled, hooks, engine)
            if answer is None:
                break
            frame, overlay = await asyncio.to_thread(
                _track_frame, tracker, sampled, answer, writer is not None
            )
            if writer is not None:
                await asyncio.to_thread(writer.add, overlay)
            result.frames.append(frame)
            if on_result is not None:
                await on_result(frame)
        result.stopped = cancel.is_set()
    finally:
        frames.close()
        if writer is not None:
            await asyncio.to_thread(writer.close)
            result.video_path = str(video_out) if writer.frames else None
    logger.info(
        "clip %s: %d frame(s), %d track(s)",
        path.name,
        len(result.frames),
        len(result.track_ids),
    )
    return result


async def _run_frame(
    services: Services, job: Job, sampled: SampledFrame, hooks: Hooks, engine: Engine
) -> AnalysisResult | None:
    """One frame's answer; None when ``hooks.cancel`` stopped it (a
    cancelled task still raises CancelledError)."""
    if hooks.cancel is not None and hooks.cancel.is_set():
        return None
    try:
        return await services.run(job, Picture(sampled.image), hooks, engine)
    except (asyncio.CancelledError, RequestCancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        if hooks.cancel is None or not hooks.cancel.is_set():
            raise
        return None


def _track_frame(
    tracker: Tracker, sampled: SampledFrame, answer: AnalysisResult, draw: bool
) -> tuple[FrameResult, Image.Image | None]:
    """The frame's tracked objects and (``draw``) its overlay, labelled
    "#N id K label" (K the track id)."""
    detections = answer.detections
    ids = tracker.update(detections)
    objects = tuple(
        TrackedObject(
            track_id,
            d.label,
            d.box_px,
            d.area,
            mask_to_rle(d.mask) if d.has_mask else None,
        )
        for track_id, d in zip(ids, detections, strict=True)
    )
    frame = FrameResult(
        sampled.index,
        sampled.source_frame,
        sampled.time_s,
        answer.raw_text,
        objects,
        answer.truncated,
    )
    if not draw:
        return frame, None
    labelled = [
        replace(d, label=f"id {k} {d.label or ''}".strip())
        for k, d in zip(ids, detections, strict=True)
    ]
    return frame, render_overlay(sampled.image, labelled)
