from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.engine.replay import ReplayModel
from core.errors import ModelUnavailableError, RequestCancelledError
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


def _slow_replay(tmp_path, synthetic_vae_path, **options) -> ReplayModel:
    recording = {"answers": {"caption en": "a red car on a street"}, **options}
    return _replay(tmp_path, synthetic_vae_path, recording)


def _calls(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_answers_come_piece_by_piece_and_cancel_stops_at_the_next(
    tmp_path, synthetic_vae_path
):
    log = tmp_path / "calls.jsonl"
    model = _slow_replay(tmp_path, synthetic_vae_path, call_log=str(log))
    model.load()
    pieces: list[str] = []
    assert (
        model.generate(
            Image.new("RGB", (8, 8)),
            "caption en",
            max_new_tokens=9,
            on_text=pieces.append,
        )
        == "a red car on a street"
    )
    assert pieces == ["a", " red", " car", " on", " a", " street"]
    cancel = threading.Event()

    def on_text(piece: str) -> None:
        pieces.append(piece)
        if len(pieces) == 8:  # the second piece of the second call
            cancel.set()

    with pytest.raises(RequestCancelledError):
        model.generate(
            Image.new("RGB", (8, 8)),
            "caption en",
            max_new_tokens=9,
            on_text=on_text,
            cancel=cancel,
        )
    assert pieces[6:] == ["a", " red"]  # nothing after the cancel
    assert _calls(log) == [
        {"prompt": "caption en", "event": "start", "pieces": 0},
        {"prompt": "caption en", "event": "done", "pieces": 6},
        {"prompt": "caption en", "event": "start", "pieces": 0},
        {"prompt": "caption en", "event": "cancelled", "pieces": 2},
    ]


def test_a_gate_fifo_releases_one_piece_per_byte(tmp_path, synthetic_vae_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    model = _slow_replay(tmp_path, synthetic_vae_path, gate=str(gate))
    model.load()
    pieces: list[str] = []
    got_one = threading.Event()

    def on_text(piece: str) -> None:
        pieces.append(piece)
        got_one.set()

    worker = threading.Thread(
        target=model.generate,
        args=(Image.new("RGB", (8, 8)), "caption en"),
        kwargs={"max_new_tokens": 9, "on_text": on_text},
    )
    worker.start()
    writer = os.open(gate, os.O_RDWR)
    try:
        os.write(writer, b"x")
        assert got_one.wait(10)
        assert pieces == ["a"]  # held at the gate until the next byte
        os.write(writer, b"xxxxx")
        worker.join(10)
    finally:
        os.close(writer)
    assert not worker.is_alive() and "".join(pieces) == "a red car on a street"


def test_unknown_replay_options_fail_the_load(tmp_path, synthetic_vae_path):
    model = _slow_replay(tmp_path, synthetic_vae_path, speed="fast")
    with pytest.raises(ModelUnavailableError, match="unknown keys"):
        model.load()
