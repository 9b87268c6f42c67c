from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.engine.replay import ReplayModel
from core.errors import ModelUnavailableError
from core.pipeline import analyze
from core.types import Intent
from tests.recorded import WHEELS_BOXES_PX, WHEELS_SEGMENT


def _replay(tmp_path, synthetic_vae_path, recording) -> ReplayModel:
    path = tmp_path / "recording.json"
    path.write_text(
        json.dumps(recording) if not isinstance(recording, str) else recording
    )
    settings = Settings(
        model_id=f"replay:{path}",
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
    )
    return ReplayModel(settings)


def test_replays_the_recorded_answer_through_the_real_pipeline(
    tmp_path, synthetic_vae_path
):
    prompt = "segment left wheel ; right wheel"
    model = _replay(tmp_path, synthetic_vae_path, {prompt: WHEELS_SEGMENT})
    model.load()
    assert model.status.state == "ready"
    assert model.status.vae_loaded
    intent = Intent(
        task="segment", prompt=prompt, targets=("left wheel", "right wheel")
    )
    result = analyze(Image.new("RGB", (640, 480)), intent, model)
    assert [d.box_px for d in result.detections] == WHEELS_BOXES_PX
    assert all(
        d.mask is not None and d.mask.shape == (480, 640) for d in result.detections
    )
    assert model.decode_masks(np.zeros((1, 16), int)).shape == (1, 64, 64)


def test_unknown_prompt_is_a_clear_error(tmp_path, synthetic_vae_path):
    model = _replay(tmp_path, synthetic_vae_path, {"detect cat": "x"})
    model.load()
    with pytest.raises(
        ModelUnavailableError, match="no answer for the prompt 'detect dog'"
    ):
        model.generate(Image.new("RGB", (8, 8)), "detect dog", max_new_tokens=5)


@pytest.mark.parametrize(
    "content",
    [
        "not json",  # broken file
        json.dumps(["a", "b"]),  # not an object
        json.dumps({"detect cat": 3}),  # answer not a string
    ],
)
def test_bad_recording_fails_the_load_with_the_fix(
    tmp_path, synthetic_vae_path, content
):
    model = _replay(tmp_path, synthetic_vae_path, content)
    with pytest.raises(ModelUnavailableError, match="replay"):
        model.load()
    assert model.status.state == "failed"
