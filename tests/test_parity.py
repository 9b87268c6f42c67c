"""bench.parity: local backends against a loopback OpenAI engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.parity import (
    box_iou,
    main,
    make_backend,
    mask_iou,
    match_detections,
    run_parity,
)
from bench.serving import serving_figures
from core.config import Settings
from core.pipeline import analyze
from core.types import Detection
from tests.recorded import SHOE_DETECT, WHEELS_SEGMENT
from tests.support.openai_fake import FakeEngine, FakeEngineServer, encode_chunks

SEGMENT = "segment left wheel ; right wheel"
RECORDING = {"detect shoe": SHOE_DETECT, SEGMENT: WHEELS_SEGMENT, "caption en": "a car"}
IMAGE = Image.new("RGB", (1024, 1024), (90, 120, 150))  # pixels == loc bins


@pytest.fixture
def replay_settings(tmp_path, synthetic_vae_path):
    path = tmp_path / "recording.json"
    path.write_text(json.dumps(RECORDING))
    return Settings(
        model_id=f"replay:{path}",
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
    )


def remote_settings(url: str, base: Settings) -> Settings:
    return Settings(
        backend="openai",
        backend_url=url,
        vae_path=base.vae_path,
        data_dir=base.data_dir,
    )


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # same
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),  # half overlap
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # apart
        ((0, 0, 0, 10), (0, 0, 0, 10), 0.0),  # empty boxes
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)


def test_mask_iou_and_greedy_matching():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    dets_a = (Detection("x", (0, 0, 10, 10)), Detection("y", (50, 50, 60, 60)))
    dets_b = (Detection("y", (51, 50, 60, 60)), Detection("z", (200, 0, 210, 9)))
    assert match_detections(dets_a, dets_b) == [(1, 0, pytest.approx(0.9))]


def test_identical_backends_agree_fully(replay_settings):
    engine = FakeEngine(answer=lambda prompt, image, n: RECORDING[prompt])
    with FakeEngineServer(engine) as server:
        local = make_backend(replay_settings)
        remote = make_backend(remote_settings(server.url, replay_settings))
        try:
            report = run_parity(local, remote, [("grey", IMAGE)], list(RECORDING))
        finally:
            remote.close()
    assert report["summary"] == {
        "cases": 3,
        "box_iou_mean": 1.0,
        "mask_iou_mean": 1.0,
        "label_agreement": 1.0,
        "object_agreement": 1.0,
        "text_agreement": 1.0,
    }
    segment = next(c for c in report["cases"] if c["prompt"] == SEGMENT)
    assert (segment["matched"], len(segment["mask_iou"])) == (2, 2)


def test_disagreements_are_measured(replay_settings):
    other = {
        "detect shoe": "<loc0051><loc0309><loc0708><loc0900> boot",  # wider, relabelled
        SEGMENT: WHEELS_SEGMENT.split(" ; ")[0],  # one of the two wheels
        "caption en": "a red car",
    }
    engine = FakeEngine(answer=lambda prompt, image, n: other[prompt])
    with FakeEngineServer(engine) as server:
        local = make_backend(replay_settings)
        remote = make_backend(remote_settings(server.url, replay_settings))
        try:
            report = run_parity(local, remote, [("grey", IMAGE)], list(RECORDING))
        finally:
            remote.close()
    shoe = next(c for c in report["cases"] if c["prompt"] == "detect shoe")
    assert shoe["box_iou"] == [pytest.approx(337 / 591, abs=1e-6)]  # x2 646 -> 900
    assert shoe["labels_equal"] == [False]
    summary = report["summary"]
    assert summary["object_agreement"] == pytest.approx(2 / 3)  # 2 matched of 3
    assert summary["mask_iou_mean"] == 1.0  # the wheel both found is the same
    assert summary["label_agreement"] == pytest.approx(1 / 2)
    assert summary["text_agreement"] == 0.0


def test_tiny_local_model_against_a_recorded_engine(
    tiny_model_dir, synthetic_vae_path, tmp_path
):
    """The real transformers path on side a, recorded PaliGemma answers on side
    b: the report keeps each side's own text and counts what differs."""
    settings = Settings(
        model_id=str(tiny_model_dir),
        device="cpu",
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
    )
    local = make_backend(settings)
    recorded = {"caption en": "a red square", "detect cat": SHOE_DETECT}
    engine = FakeEngine(answer=lambda p, i, n: recorded[p], encode=encode_chunks)
    prompts = list(recorded)
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    own = {p: analyze(image, p, local).raw_text for p in prompts}  # greedy: stable
    assert all(own[p] != recorded[p] for p in prompts)  # random weights
    with FakeEngineServer(engine) as server:
        remote = make_backend(remote_settings(server.url, settings))
        try:
            report = run_parity(local, remote, [("red", image)], prompts)
        finally:
            remote.close()
    cases = report["cases"]
    assert [case["raw_text_a"] for case in cases] == [own[p] for p in prompts]
    assert [case["raw_text_b"] for case in cases] == [recorded[p] for p in prompts]
    assert report["summary"]["text_agreement"] == 0.0


def test_serving_figures_count_every_request_and_token(replay_settings):
    engine = FakeEngine(answer=lambda p, i, n: RECORDING[p], token_delay_s=0.002)
    with FakeEngineServer(engine) as server:
        remote = make_backend(remote_settings(server.url, replay_settings))
        try:
            levels = serving_figures(
                remote,
                [(IMAGE, "detect shoe", 30)],
                concurrency=(1, 4),
                requests_per_level=4,
            )
        finally:
            remote.close()
    tokens = 4 + len(" shoe") + 1  # 4 locs, a char per label char, EOS
    for level, concurrency in zip(levels, (1, 4), strict=True):
        assert level["concurrency"] == concurrency
        assert (level["completed"], level["errors"]) == (4, 0)
        assert level["output_tokens"] == 4 * tokens
        assert level["ttft_s"]["mean"] >= 0.002  # the first token waited its delay
        assert level["ttft_s"]["mean"] <= level["e2e_s"]["mean"]
        assert level["tpot_s"]["mean"] > 0
    assert levels[1]["duration_s"] < 0.75 * 4 * levels[1]["e2e_s"]["mean"]  # overlap


def test_cli_prints_parity_and_serving_json(
    replay_settings, tmp_path, monkeypatch, capsys
):
    IMAGE.save(tmp_path / "grey.png")
    monkeypatch.setenv("MODEL_ID", replay_settings.model_id)
    monkeypatch.setenv("VAE_PATH", replay_settings.vae_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    engine = FakeEngine(answer=lambda prompt, image, n: RECORDING[prompt])
    with FakeEngineServer(engine) as server:
        main(
            [
                "--images", str(tmp_path / "grey.png"),
                "--prompts", "detect shoe", SEGMENT,
                "--b-model", "google/paligemma2-3b-mix-448",
                "--b-url", server.url,
                "--concurrency", "1", "2",
                "--requests", "2",
            ]
        )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["box_iou_mean"] == 1.0
    assert report["b"] == {
        "backend": "openai",
        "model_id": "google/paligemma2-3b-mix-448",
    }
    assert [level["concurrency"] for level in report["serving"]] == [1, 2]
    assert all(level["completed"] == 2 for level in report["serving"])
