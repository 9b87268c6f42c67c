"""Synthetic clips made with PyAV in the test, and a model that answers the
box of the moving square on each frame (its loc tokens from the known
position), for the video tests (core.video, chat, REST, CLI)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from core.engine.base import ModelStatus
from tests.support.fakes import FakeModel

SIDE = 256  # 1024 loc bins / 256 px: 4 bins a pixel, boxes come back exact
SQUARE = 64
STEP = 16  # pixels the square moves right per frame
TOP = 96


def square_box(frame: int) -> tuple[int, int, int, int]:
    """The red square's (x1, y1, x2, y2) in pixels on ``frame`` (0-based)."""
    x1 = 16 + STEP * frame
    return x1, TOP, x1 + SQUARE, TOP + SQUARE


def make_clip(path: Path, frames: int = 10, fps: int = 10, size: int = SIDE) -> Path:
    """An MP4 of a red square moving right over grey, ``frames`` at ``fps``."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for number in range(frames):
            pixels = np.full((size, size, 3), 128, dtype=np.uint8)
            x1, y1, x2, y2 = square_box(number)
            pixels[y1:y2, x1:x2] = (220, 20, 20)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def loc_answer(box: tuple[int, int, int, int], label: str, side: int = SIDE) -> str:
    """PaliGemma's answer for ``box``: y1 x1 y2 x2 in 1/1024 of the side."""
    x1, y1, x2, y2 = (round(v * 1024 / side) for v in box)
    return "".join(f"<loc{v:04d}>" for v in (y1, x1, y2, x2)) + f" {label}"


class SquareModel(FakeModel):
    """A ready engine that answers, call by call, the square's box on the
    next frame (``frames`` answers, then AssertionError like FakeModel)."""

    def __init__(self, frames: int = 10, label: str = "square") -> None:
        super().__init__()
        for number in range(frames):
            self.enqueue(loc_answer(square_box(number), label))

    @property
    def status(self) -> ModelStatus:
        return ModelStatus(
            "ready", "fake/model", "cpu", "float32", True, True, None, None
        )


def make_sound_only(path: Path) -> Path:
    """An MP4 with one second of silence and no video stream."""
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        for start in range(0, 8000, 1024):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
