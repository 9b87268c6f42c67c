"""Honest test doubles: a model that replays recorded outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.types import GeneratedText


def disc_logits(n: int, size: int = 64) -> np.ndarray:
    """float32 [n, size, size] logits, positive inside a centred disc."""
    yy, xx = np.mgrid[0:size, 0:size]
    centre = (size - 1) / 2
    radius = size / 3
    logits = radius - np.hypot(yy - centre, xx - centre)  # > 0 inside the disc
    return np.repeat((logits / radius)[None].astype(np.float32), n, axis=0)


@dataclass
class FakeModel:
    """Replays enqueued outputs; records every call in ``calls``.

    ``decode_masks`` uses ``mask_decoder`` when given (e.g. a MaskDecoder on a
    synthetic checkpoint), otherwise a disc per object.
    """

    outputs: list[GeneratedText] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    mask_calls: list[np.ndarray] = field(default_factory=list)
    mask_decoder: Any = None

    def enqueue(self, text: str, *, truncated: bool = False) -> FakeModel:
        self.outputs.append(GeneratedText(text, truncated=truncated))
        return self

    def generate(self, image, prompt: str, **decoding: Any) -> GeneratedText:
        self.calls.append({"image_size": image.size, "prompt": prompt, **decoding})
        if not self.outputs:
            raise AssertionError(f"FakeModel got an unexpected prompt {prompt!r}")
        return self.outputs.pop(0)

    def decode_masks(self, seg_indices: np.ndarray) -> np.ndarray:
        seg_indices = np.asarray(seg_indices)
        self.mask_calls.append(seg_indices)
        if self.mask_decoder is not None:
            return self.mask_decoder.decode(seg_indices)
        return disc_logits(len(seg_indices))
