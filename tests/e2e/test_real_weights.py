"""Checks on the real PaliGemma 2 checkpoint and vae-oid.npz.

Fenced: they run only when the weights are on disk, named by
PALIGEMMA_REAL_MODEL (a local checkpoint folder of a PaliGemma 2 mix model)
and PALIGEMMA_REAL_VAE (the real vae-oid.npz). No weights can be downloaded on
the development machines, so they skip there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import VAE_SHA256, Settings
from core.types import Intent
from tests.recorded import WHEELS_BOXES_PX, WHEELS_SEGMENT

REAL_MODEL = os.environ.get("PALIGEMMA_REAL_MODEL", "")
REAL_VAE = os.environ.get("PALIGEMMA_REAL_VAE", "")

pytestmark = pytest.mark.slow
needs_model = pytest.mark.skipif(
    not Path(REAL_MODEL or "/nonexistent").is_dir(),
    reason="set PALIGEMMA_REAL_MODEL to a local PaliGemma 2 mix checkpoint",
)
needs_vae = pytest.mark.skipif(
    not Path(REAL_VAE or "/nonexistent").is_file(),
    reason="set PALIGEMMA_REAL_VAE to the real vae-oid.npz",
)


@needs_vae
def test_real_vae_file_is_the_published_one():
    from core.mask_decoder import file_sha256

    assert file_sha256(REAL_VAE) == VAE_SHA256


@needs_vae
def test_recorded_wheel_codes_decode_to_wheel_sized_masks_in_their_boxes():
    from core.mask_decoder import MaskDecoder
    from core.pipeline import analyze
    from tests.support.fakes import FakeModel

    model = FakeModel(mask_decoder=MaskDecoder.from_npz(REAL_VAE))
    model.enqueue(WHEELS_SEGMENT)
    intent = Intent(task="segment", prompt="segment left wheel ; right wheel")
    result = analyze(Image.new("RGB", (640, 480)), intent, model)
    for detection, box in zip(result.detections, WHEELS_BOXES_PX, strict=True):
        x1, y1, x2, y2 = box
        inside = detection.mask[y1:y2, x1:x2].mean()
        assert 0.3 < inside < 1.0  # a wheel fills much of its own box
        assert detection.mask.sum() == detection.mask[y1:y2, x1:x2].sum()


@needs_model
def test_real_tokenizer_ids_and_a_grounded_answer():
    from core.engine.local import ModelManager

    manager = ModelManager(Settings(model_id=REAL_MODEL, vae_path=REAL_VAE or None))
    manager.load()
    tokenizer = manager.processor.tokenizer
    assert tokenizer.convert_tokens_to_ids("<loc0000>") == 256000
    assert tokenizer.convert_tokens_to_ids("<seg000>") == 257024
    assert tokenizer.convert_tokens_to_ids("<image>") == 257152
    image = Image.new("RGB", (448, 448), "white")
    pixels = np.asarray(image).copy()
    pixels[100:300, 150:350] = (220, 30, 30)  # a red square
    answer = manager.generate(
        Image.fromarray(pixels), "detect square", max_new_tokens=20
    )
    assert "<loc" in answer
