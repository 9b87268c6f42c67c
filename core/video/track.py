"""Objects linked across sampled frames: stable track ids.

supervision 0.31 no longer ships ByteTrack (it moved to the ``trackers``
package, which pulls the GUI opencv build), so the link is ByteTrack's first
stage, kept small: each track's box is predicted one sample ahead (constant
velocity), then matched to the frame's boxes of the same label by IoU with
the Hungarian assignment (supervision's ``box_iou_batch``, SciPy); an
unmatched box starts a track, a track unseen for ``max_misses`` samples ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from scipy.optimize import linear_sum_assignment

from core.types import BoxPx, Detection, Intent
from core.video.clip import ClipInfo

logger = logging.getLogger(__name__)

MIN_IOU = 0.1  # sparse samples move far: a weak overlap of the prediction is a match
MAX_MISSES = 3  # samples a track may go unseen before its id is retired


@dataclass(frozen=True)
class TrackedObject:
    """One object on one sampled frame, with its track id (stable across
    frames) and its mask as COCO RLE when the request segments."""

    track_id: int
    label: str | None
    box_px: BoxPx
    area: int
    rle: dict | None = None


@dataclass(frozen=True)
class FrameResult:
    """One sampled frame's answer: its number among the samples (1-based),
    the source frame number and time, the raw model text and the objects."""

    index: int
    source_frame: int
    time_s: float
    raw_text: str
    objects: tuple[TrackedObject, ...]
    truncated: bool = False


@dataclass
class VideoResult:
    """A clip's answer: the frames analysed (in order), and the annotated
    clip's path once written; ``stopped`` when the user stopped it."""

    intent: Intent
    info: ClipInfo
    frames: list[FrameResult] = field(default_factory=list)
    video_path: str | None = None
    stopped: bool = False

    @property
    def track_ids(self) -> list[int]:
        return sorted({o.track_id for f in self.frames for o in f.objects})


@dataclass
class _Track:
    track_id: int
    label: str | None
    box: np.ndarray  # float xyxy
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    misses: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + np.tile(self.velocity, 2)

    def seen(self, box: np.ndarray) -> None:
        moved = (box[:2] + box[2:]) / 2 - (self.box[:2] + self.box[2:]) / 2
        self.velocity = (
            moved if not self.velocity.any() else (moved + self.velocity) / 2
        )
        self.box, self.misses = box, 0


class Tracker:
    """Track ids for each sampled frame's detections, in order (``update``)."""

    def __init__(self, min_iou: float = MIN_IOU, max_misses: int = MAX_MISSES):
        self.min_iou, self.max_misses = min_iou, max_misses
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, detections: Sequence[Detection]) -> list[int]:
        """The track id of each of ``detections`` (one frame), in order."""
        boxes = np.array([d.box_px for d in detections], dtype=float).reshape(-1, 4)
        matches = self._match(boxes, [d.label for d in detections])
        ids: list[int] = []
        matched_tracks = set()
        for index, detection in enumerate(detections):
            track = matches.get(index)
            if track is None:
                track = _Track(self._next_id, detection.label, boxes[index])
                self._next_id += 1
                self._tracks.append(track)
            else:
                track.seen(boxes[index])
            matched_tracks.add(track.track_id)
            ids.append(track.track_id)
        for track in self._tracks:
            if track.track_id not in matched_tracks:
                track.misses += 1
        self._tracks = [t for t in self._tracks if t.misses <= self.max_misses]
        return ids

    def _match(self, boxes: np.ndarray, labels: list[str | None]) -> dict[int, _Track]:
        if not self._tracks or not len(boxes):
            return {}
        predicted = np.array([t.predicted() for t in self._tracks])
        iou = sv.box_iou_batch(boxes, predicted)
        same = np.array([[lab == t.label for t in self._tracks] for lab in labels])
        iou = np.where(same, iou, 0.0)
        rows, cols = linear_sum_assignment(-iou)
        return {
            int(r): self._tracks[int(c)]
            for r, c in zip(rows, cols, strict=True)
            if iou[r, c] >= self.min_iou
        }
