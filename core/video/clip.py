"""A video clip: checked against the limits (probe_clip), then sampled one
decoded frame at a time (sample_frames): decode, sample, hand over, drop."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from core.config import MB, Settings
from core.errors import UserInputError

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv")
VIDEO_MIME_TYPES = ("video/mp4", "video/quicktime", "video/webm", "video/x-matroska")
# FFmpeg demuxers of the containers we take (an image is "image2", refused)
_FORMATS = ("mov", "mp4", "matroska", "webm")
_NOT_A_VIDEO = (
    "This file is not a video I can read (MP4, MOV or WebM expected); it may "
    "be broken or cut short. Export it again or send another clip."
)

_NO_FRAMES = "This clip has no video frames; send a clip with a picture."


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says: its size, length and the sampling plan."""

    size_wh: tuple[int, int]
    duration_s: float
    sample_fps: float  # VIDEO_FPS, lowered so at most VIDEO_MAX_FRAMES are taken
    frames: int  # frames that will be sampled

    @property
    def times_s(self) -> list[float]:
        return [index / self.sample_fps for index in range(self.frames)]


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: its number among the samples (1-based), the
    source frame's number (0-based) and time, and the picture."""

    index: int
    source_frame: int
    time_s: float
    image: Image.Image


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def is_video_bytes(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts an MP4/MOV or a
    Matroska/WebM container."""
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska, WebM
        return True
    return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        logger.info("not a video %s: %s", path.name, exc)
        raise UserInputError(_NOT_A_VIDEO) from None
    names = set(container.format.name.split(","))
    if not names & set(_FORMATS):
        container.close()
        raise UserInputError(_NOT_A_VIDEO)
    if not container.streams.video:
        container.close()
        raise UserInputError(_NO_FRAMES)
    return container


def _duration_s(container: av.container.InputContainer) -> float:
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return 0.0


def probe_clip(path: Path, settings: Settings) -> ClipInfo:
    """The clip's ClipInfo; UserInputError (with the fix) for a file over
    VIDEO_MAX_MB, not a readable video, longer than VIDEO_MAX_SECONDS,
    frames over MAX_IMAGE_PIXELS, or no frames at all."""
    size = path.stat().st_size
    if size > settings.video_max_mb * MB:
        raise UserInputError(
            f"This clip is {size / MB:.1f} MB; videos may be at most "
            f"{settings.video_max_mb} MB (VIDEO_MAX_MB). Trim or compress it."
        )
    with _open(path) as container:
        stream = container.streams.video[0]
        size_wh = (stream.codec_context.width, stream.codec_context.height)
        duration_s = _duration_s(container)
    if duration_s > settings.video_max_seconds:
        raise UserInputError(
            f"This clip lasts {duration_s:.1f} s; videos may be at most "
            f"{settings.video_max_seconds:g} s long (VIDEO_MAX_SECONDS). Trim it."
        )
    if size_wh[0] * size_wh[1] > settings.max_image_pixels:
        raise UserInputError(
            f"This clip's frames are {size_wh[0]}x{size_wh[1]}; at most "
            f"{settings.max_image_pixels:,} pixels (MAX_IMAGE_PIXELS)."
        )
    if duration_s <= 0 or size_wh[0] <= 0:
        raise UserInputError(_NO_FRAMES)
    return _plan(size_wh, duration_s, settings)


def _plan(size_wh: tuple[int, int], duration_s: float, settings: Settings) -> ClipInfo:
    fps = settings.video_fps
    frames = max(1, math.ceil(duration_s * fps - 1e-6))
    if frames > settings.video_max_frames:
        frames = settings.video_max_frames
        fps = frames / duration_s
    return ClipInfo(size_wh, duration_s, fps, frames)


def sample_frames(path: Path, info: ClipInfo) -> Iterator[SampledFrame]:
    """The clip's sampled frames, decoded lazily: the first frame at or past
    each sample time (0, 1/fps, 2/fps...), at most ``info.frames``. Only the
    frame being handed over is held. UserInputError when no frame decodes."""
    times = info.times_s
    taken = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for number, frame in enumerate(container.decode(stream)):
                time_s = float(frame.time) if frame.time is not None else 0.0
                if time_s + 1e-6 < times[taken]:
                    continue
                taken += 1
                yield SampledFrame(taken, number, time_s, frame.to_image())
                if taken >= len(times):
                    return
        except av.FFmpegError as exc:
            logger.info("clip %s stops decoding: %s", path.name, exc)
            if taken == 0:
                raise UserInputError(_NOT_A_VIDEO) from None
    if taken == 0:
        raise UserInputError(_NO_FRAMES)
