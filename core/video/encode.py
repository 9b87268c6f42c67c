"""The annotated clip: one overlay per sampled frame, written as it comes
(H.264 when PyAV's FFmpeg has libx264, else MPEG-4 Part 2), at the sampled
rate: a 10 s clip sampled at 0.5 fps plays its 5 looks over 10 s."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
from PIL import Image

logger = logging.getLogger(__name__)


def video_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _even(size_wh: tuple[int, int]) -> tuple[int, int]:
    """yuv420p needs even sides: the size, one pixel smaller where odd."""
    return max(2, size_wh[0] // 2 * 2), max(2, size_wh[1] // 2 * 2)


class ClipWriter:
    """``with ClipWriter(path, size_wh, fps) as writer: writer.add(image)``."""

    def __init__(self, path: Path, size_wh: tuple[int, int], fps: float) -> None:
        self.path = path
        self.size_wh = _even(size_wh)
        self._rate = Fraction(fps).limit_denominator(1000) or Fraction(1)
        self._container = av.open(str(path), mode="w", format="mp4")
        codec = video_codec()
        stream = self._container.add_stream(codec, rate=self._rate)
        stream.width, stream.height = self.size_wh
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / self._rate
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "crf": "23"}
        self._stream = stream
        self.frames = 0

    def add(self, image: Image.Image) -> None:
        """Encode one overlay (resized to the writer's even size when odd)."""
        if image.size != self.size_wh:
            image = image.resize(self.size_wh)
        frame = av.VideoFrame.from_image(image.convert("RGB"))
        frame.pts = self.frames
        frame.time_base = self._stream.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
