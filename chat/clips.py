"""Video clips in the chat: an MP4/MOV/WebM upload is kept as this session's
clip (checked against VIDEO_MAX_MB / VIDEO_MAX_SECONDS at once), and "track
the cars", "segment the dog in this clip" run on its sampled frames through
the service (core.service.video): "frame 3 of 20" while it works (Stop ends
it), one step per frame (prompt and raw answer), then the annotated clip,
a per-frame table and the MOT / COCO-video downloads."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import chainlit as cl

from chat.analysis import run_options, say
from chat.charge import upload_refusal
from chat.loading import ready_engine
from chat.options import current_options
from chat.runs import CHAT_PER_SESSION, chat_client
from chat.services import ChatServices
from chat.session import client_key
from chat.uploads import count_kept
from core.engine.queue import CHAT
from core.errors import AppError
from core.intent import parse_intent
from core.security import code_block_safe, escape_markdown, inline_code
from core.service import Hooks
from core.service.video import probe, run_clip
from core.types import GROUNDED_TASKS
from core.video import (
    ClipInfo,
    FrameResult,
    VideoResult,
    coco_video,
    is_video_bytes,
    is_video_name,
    mot_text,
    video_request,
)
from core.video.request import is_video_request

logger = logging.getLogger(__name__)

CLIP_KEY = "clip"


@dataclass(frozen=True)
class Clip:
    """The session's last clip: where Chainlit keeps it, its name, its plan."""

    path: str
    name: str
    info: ClipInfo


def is_clip(element: object) -> bool:
    """An uploaded element that is a clip (name, declared type or bytes)."""
    name, mime = getattr(element, "name", "") or "", getattr(element, "mime", "")
    if is_video_name(name) or (mime or "").startswith("video/"):
        return True
    try:
        with open(element.path, "rb") as file:  # type: ignore[attr-defined]
            return is_video_bytes(file.read(12))
    except (OSError, TypeError):
        return False


async def keep_clips(services: ChatServices, elements: list) -> Clip | None:
    """Check each uploaded clip (quota, rate limit, VIDEO_* limits) and keep
    the last good one as the session's clip; the user is told about the rest."""
    kept = None
    for element in elements:
        name = element.name or Path(element.path).name
        refusal = await upload_refusal(services)
        try:
            if refusal is not None:
                raise AppError(refusal)
            info = await asyncio.to_thread(probe, Path(element.path), services.settings)
        except AppError as exc:
            await say(f"**{escape_markdown(name)}**: {escape_markdown(exc.message)}")
            continue
        count_kept()
        kept = Clip(str(element.path), name, info)
        cl.user_session.set(CLIP_KEY, kept)
    return kept


async def wants_clip(text: str, uploaded: bool, has_photos: bool) -> bool:
    """Whether ``text`` is about the session's clip: it names a clip or asks
    to track, it came with the clip, or it is a detect/segment request and
    there is no photo to run it on (help, undo... stay chat commands)."""
    if cl.user_session.get(CLIP_KEY) is None:
        return False
    if uploaded or is_video_request(text):
        return True
    if has_photos:
        return False
    intent = await asyncio.to_thread(parse_intent, text)  # may load langid
    return intent.runs_model and intent.task in GROUNDED_TASKS


async def greet_clip(clip: Clip) -> None:
    info = clip.info
    await say(
        f"Got the clip **{escape_markdown(clip.name)}** ({info.duration_s:.1f} s, "
        f"{info.size_wh[0]}x{info.size_wh[1]}): I will look at {info.frames} "
        'frame(s). What should I follow? e.g. "track the cars".'
    )


async def track_clip(services: ChatServices, text: str) -> None:
    """Run ``text`` on the session's clip and reply (errors said plainly)."""
    clip: Clip = cl.user_session.get(CLIP_KEY)
    try:
        intent = await asyncio.to_thread(video_request, text)
        options = replace(run_options(services, current_options()), tiles="off")
        client = client_key(cl.context.session, services.settings.forwarded_allow_ips)
        job = services.service.prepare(
            intent,
            options,
            client,
            images=clip.info.frames,
            turn=chat_client(),
            kind=CHAT,
            cap=CHAT_PER_SESSION,
        )
        engine = await ready_engine(services, options.model)
    except AppError as exc:
        await say(f"⚠️ {escape_markdown(exc.message)}")
        return
    progress = cl.Message(content=f"🎞️ Frame 1 of {clip.info.frames}… (Stop ends it)")
    await progress.send()

    async def on_frame(number: int, total: int) -> None:
        progress.content = f"🎞️ Frame {number} of {total}… (Stop ends it)"
        await progress.update()

    async def on_result(frame: FrameResult) -> None:
        name = f"frame {frame.index}"
        async with cl.Step(
            name=name, type="llm", show_input="text", language="text"
        ) as step:
            step.input = code_block_safe(intent.prompt)
            step.output = code_block_safe(frame.raw_text) or "(empty answer)"

    folder = Path(clip.path).parent
    video_out = folder / f"{Path(clip.path).stem}-tracked.mp4"
    try:
        result = await run_clip(
            services.service,
            job,
            Path(clip.path),
            clip.info,
            video_out=video_out,
            hooks=Hooks(),
            on_frame=on_frame,
            on_result=on_result,
            engine=engine,
        )
    except asyncio.CancelledError:
        progress.content = "⏹️ Stopped: the clip was not finished."
        await progress.update()
        raise
    except AppError as exc:
        progress.content = f"⚠️ {escape_markdown(exc.message)}"
        await progress.update()
        return
    await progress.remove()
    await _reply(clip, result, folder)


async def _reply(clip: Clip, result: VideoResult, folder: Path) -> None:
    stem = Path(clip.name).stem or "clip"
    mot = folder / f"{Path(clip.path).stem}-tracks.mot.txt"
    coco = folder / f"{Path(clip.path).stem}-tracks.coco.json"
    await asyncio.to_thread(mot.write_text, mot_text(result), "utf-8")
    document = json.dumps(coco_video(result, clip.name))
    await asyncio.to_thread(coco.write_text, document, "utf-8")
    elements: list = []
    if result.video_path:
        elements.append(
            cl.Video(
                path=result.video_path, name=f"{stem}-tracked.mp4", display="inline"
            )
        )
    elements.append(cl.File(path=str(mot), name=f"{stem}.mot.txt"))
    elements.append(cl.File(path=str(coco), name=f"{stem}.coco-video.json"))
    await cl.Message(content=clip_table(clip.name, result), elements=elements).send()


def clip_table(name: str, result: VideoResult) -> str:
    """The reply's text: what ran, the tracks, one table row per frame."""
    info, frames = result.info, result.frames
    tracks = result.track_ids
    head = (
        f"**{escape_markdown(name)}**: {inline_code(result.intent.prompt)} on "
        f"{len(frames)} of {info.frames} frame(s) ({info.sample_fps:g} per second of "
        f"a {info.duration_s:.1f} s clip): {len(tracks)} track(s)"
    )
    if result.stopped:
        head += " (stopped early)"
    rows = [
        "| frame | time | objects (track id: label, box x1 y1 x2 y2) |",
        "|---|---|---|",
    ]
    for frame in frames:
        objects = "; ".join(
            f"id {o.track_id}: {escape_markdown(o.label or 'object')} "
            f"{' '.join(map(str, o.box_px))}"
            for o in frame.objects
        )
        rows.append(f"| {frame.index} | {frame.time_s:.1f} s | {objects or '—'} |")
    return head + ".\n\n" + "\n".join(rows)
