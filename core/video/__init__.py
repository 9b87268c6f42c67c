"""Video: a clip sampled into frames (clip.py), objects linked across them
(track.py), the annotated clip written back (encode.py) and the per-frame
exports (export.py). The service runs each sampled frame through the model
queue (core.service.video); nothing here holds more than one decoded frame."""

from __future__ import annotations

from core.video.clip import (
    VIDEO_SUFFIXES,
    ClipInfo,
    SampledFrame,
    is_video_bytes,
    is_video_name,
    probe_clip,
    sample_frames,
)
from core.video.export import clip_to_dict, coco_video, mot_text
from core.video.request import video_request
from core.video.track import FrameResult, TrackedObject, Tracker, VideoResult

__all__ = [
    "VIDEO_SUFFIXES",
    "ClipInfo",
    "FrameResult",
    "SampledFrame",
    "TrackedObject",
    "Tracker",
    "VideoResult",
    "clip_to_dict",
    "coco_video",
    "is_video_bytes",
    "is_video_name",
    "mot_text",
    "probe_clip",
    "sample_frames",
    "video_request",
]
