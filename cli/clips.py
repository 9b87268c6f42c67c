"""The CLI on video clips: each clip of the folder sampled and tracked
through the service (core.service.video), one result per clip written to
the output folder: ``<stem>.tracks.json`` (frames with track ids),
``<stem>.mot.txt``, ``<stem>.coco-video.json`` and, unless --no-overlay,
``<stem>.tracked.mp4`` (the annotated clip)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from core.engine.base import Engine
from core.errors import AppError
from core.export import safe_name
from core.service import Services
from core.service.video import probe, run_clip
from core.types import Decoding, Intent
from core.video import clip_to_dict, coco_video, is_video_name, mot_text

logger = logging.getLogger(__name__)


def split_clips(
    sources: Sequence[tuple[str, Path]],
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
    """``(photos, clips)`` of ``sources``: clips by their extension."""
    clips = [s for s in sources if is_video_name(s[0])]
    return [s for s in sources if not is_video_name(s[0])], clips


def run_clips(
    services: Services,
    engine: Engine,
    intent: Intent,
    clips: Sequence[tuple[str, Path]],
    out: Path,
    *,
    decoding: Decoding,
    overlays: bool,
) -> tuple[int, int]:
    """Track ``intent`` in each clip; (clips done, clips failed). A failed
    clip (too long, too big, not a video) is reported and the others go on."""
    done = failed = 0
    stems: set[str] = set()
    for number, (name, path) in enumerate(clips, start=1):
        stem = safe_name(Path(name).with_suffix("").as_posix(), f"clip{number}")
        stem = stem if stem not in stems else f"{stem}-{number}"
        stems.add(stem)
        print(f"clip {number} of {len(clips)}: {name}", file=sys.stderr)
        try:
            _one_clip(
                services,
                engine,
                intent,
                name,
                path,
                out / stem,
                decoding=decoding,
                overlays=overlays,
            )
        except AppError as exc:
            print(f"failed: {name}: {exc.message}", file=sys.stderr)
            failed += 1
        else:
            done += 1
    return done, failed


def _one_clip(
    services: Services,
    engine: Engine,
    intent: Intent,
    name: str,
    path: Path,
    base: Path,
    *,
    decoding: Decoding,
    overlays: bool,
) -> None:
    info = probe(path, services.settings)
    job = services.prepare(
        intent, services.options(decoding), "cli", images=info.frames
    )
    video_out = base.with_name(f"{base.name}.tracked.mp4") if overlays else None

    async def progress(n: int, total: int) -> None:
        print(f"  frame {n} of {total}", file=sys.stderr)

    result = asyncio.run(
        run_clip(
            services,
            job,
            path,
            info,
            video_out=video_out,
            on_frame=progress,
            engine=engine,
        )
    )
    frames = clip_to_dict(result, name)
    with_name = base.with_name
    with_name(f"{base.name}.tracks.json").write_text(json.dumps(frames), "utf-8")
    with_name(f"{base.name}.mot.txt").write_text(mot_text(result), "utf-8")
    coco = json.dumps(coco_video(result, name))
    with_name(f"{base.name}.coco-video.json").write_text(coco, "utf-8")
