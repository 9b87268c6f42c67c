"""MODELS: several checkpoints side by side (core.engine.registry), with two tiny
PaliGemma 2 checkpoints of different seeds and input sizes and with replays."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest
from PIL import Image

from core.config import Settings
from core.engine import create_registry
from core.engine.registry import GB, EngineRegistry, estimate_weight_bytes
from core.engine.replay import ReplayModel
from core.errors import ModelNotAllowedError, ModelNotLoadedError


@pytest.fixture(scope="module")
def tiny_448_like(tmp_path_factory) -> Path:
    """A second tiny checkpoint: another seed and a 64 px input (64 tokens)."""
    from scripts.make_tiny_model import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny-64px"), seed=1, image_size_px=64
    )


def _replays(tmp_path: Path, **answers: str) -> dict[str, str]:
    """name -> replay:<file> whose recording answers "caption en" with the value."""
    ids = {}
    for name, answer in answers.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"caption en": answer}), encoding="utf-8")
        ids[name] = f"replay:{path}"
    return ids


@pytest.mark.parametrize(
    ("env", "expected", "raises"),
    [
        ({"MODELS": "a, b,,"}, ("a", "b"), does_not_raise()),  # case: list
        ({"MODEL_ID": "m"}, ("m",), does_not_raise()),  # case: MODEL_ID alone
        ({}, (None,), does_not_raise()),  # case: auto
        ({"MODELS": "a,b", "MODEL_ID": "b"}, ("a", "b"), does_not_raise()),  # case: in
        ({"MODELS": "a,a"}, None, pytest.raises(ValueError, match="twice")),  # dup
        (
            {"MODELS": "a,b", "MODEL_ID": "c"},  # case: MODEL_ID not among MODELS
            None,
            pytest.raises(ValueError, match="not in MODELS"),
        ),
    ],
)
def test_models_setting(env, expected, raises) -> None:
    with raises:
        assert Settings.from_env(env).model_ids == expected


@pytest.mark.parametrize(
    ("requested", "allowlist", "chosen", "error"),
    [
        (None, (), "first", None),  # case: not named -> the default
        ("", (), "first", None),  # case: empty -> the default
        ("second", (), "second", None),  # case: the other one, as listed
        ("replay:second.json", (), "second", None),  # case: by its shown name
        ("google/paligemma2-28b-mix-448", (), None, ModelNotAllowedError),  # other
        ("evil/model", ("google/x",), None, ModelNotAllowedError),  # not listed
        ("google/x", ("google/x",), None, ModelNotLoadedError),  # listed, not served
    ],
)
def test_get_chooses_among_the_served_models(
    tmp_path, requested, allowlist, chosen, error
) -> None:
    ids = _replays(tmp_path, first="a", second="b")
    settings = Settings(models=tuple(ids.values()), model_allowlist=allowlist)
    registry = create_registry(settings)
    engines = dict(zip(("first", "second"), registry.ids, strict=True))
    if requested in engines:
        requested = engines[requested]
    if error is None:
        engine = registry.get(requested)
        assert engine is dict(registry.engines())[engines[chosen]]
    else:
        with pytest.raises(error) as caught:
            registry.get(requested)
        message = caught.value.message
        assert "replay:first.json" in message  # names what is served,
        assert str(tmp_path) not in message  # by name, not by path


def test_choices_label_each_checkpoint_by_its_name() -> None:
    settings = Settings()
    engines = {
        "/models/paligemma2-3b-mix-224": ReplayModel(settings),
        "google/paligemma2-3b-mix-448": ReplayModel(settings),
    }
    assert EngineRegistry(settings, engines).choices() == {
        "paligemma2-3b-mix-224": "paligemma2-3b-mix-224",  # a name, no path
        "paligemma2-3b-mix-448": "google/paligemma2-3b-mix-448",
    }
    clash = {"/a/tiny": ReplayModel(settings), "/b/tiny": ReplayModel(settings)}
    registry = EngineRegistry(settings, clash)
    assert registry.choices() == {"tiny": "tiny", "tiny-2": "tiny-2"}
    assert registry.get("tiny-2") is dict(registry.engines())["/b/tiny"]


def test_two_replays_answer_from_their_own_recordings(
    tmp_path, synthetic_vae_path
) -> None:
    ids = _replays(tmp_path, first="a cat", second="a dog")
    settings = Settings(models=tuple(ids.values()), vae_path=str(synthetic_vae_path))
    registry = create_registry(settings)
    registry.load_all()
    image = Image.new("RGB", (40, 30))
    answers = [
        str(registry.get(model_id).generate(image, "caption en", max_new_tokens=8))
        for model_id in ids.values()
    ]
    assert answers == ["a cat", "a dog"]


def test_two_tiny_checkpoints_load_one_after_the_other_and_both_run(
    tiny_model_dir, tiny_448_like, synthetic_vae_path, tmp_path
) -> None:
    settings = Settings(
        models=(str(tiny_model_dir), str(tiny_448_like)),
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
        load_on_start=False,
    )
    registry = create_registry(settings)
    assert [e.status.state for _, e in registry.engines()] == ["idle", "idle"]
    registry.start_background_load().join(300)
    small, large = (engine for _, engine in registry.engines())
    assert small.status.state == large.status.state == "ready"
    assert registry.default is small  # the first of MODELS
    assert small.processor.image_seq_length == 16
    assert large.processor.image_seq_length == 64  # really the other checkpoint
    assert registry.get(str(tiny_448_like)) is large
    image = Image.new("RGB", (48, 40), (10, 200, 30))
    for engine in (small, large):
        out = engine.generate(image, "caption en", max_new_tokens=4)
        assert out.num_tokens >= 1


def test_memory_check_refuses_what_does_not_fit_with_the_numbers(
    tiny_model_dir, tiny_448_like, synthetic_vae_path, tmp_path
) -> None:
    settings = Settings(
        models=(str(tiny_model_dir), str(tiny_448_like)),
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
        device="cpu",
    )
    first = estimate_weight_bytes(str(tiny_model_dir), settings, "cpu")
    second = estimate_weight_bytes(str(tiny_448_like), settings, "cpu")
    assert 0 < first < second  # a bigger vision input has more position weights
    engines = create_registry(settings).engines()

    room_for_one = EngineRegistry(
        settings, dict(engines), available_bytes=lambda _: int(first / 0.9) + 1
    )
    refused = room_for_one.check_memory()
    assert list(refused) == [str(tiny_448_like)]
    assert "MODELS" in refused[str(tiny_448_like)]
    assert "GB" in refused[str(tiny_448_like)]
    room_for_one.load_all()
    default, other = (engine for _, engine in engines)
    assert default.status.state == "ready"
    assert other.status.state == "failed"
    assert other.status.error == refused[str(tiny_448_like)]
    assert not other.status.model_loaded  # never loaded, not loaded then dropped

    room_for_both = EngineRegistry(
        settings, dict(engines), available_bytes=lambda _: int(GB)
    )
    assert room_for_both.check_memory() == {}


def test_memory_is_not_checked_for_one_model(tiny_model_dir) -> None:
    settings = Settings(model_id=str(tiny_model_dir), device="cpu")
    registry = create_registry(settings)
    refusing = EngineRegistry(settings, dict(registry.engines()), lambda _: 0)
    assert refusing.check_memory() == {}


@pytest.mark.parametrize(
    ("model_id", "overrides", "device", "expected_gb"),
    [
        ("google/paligemma2-3b-mix-224", {}, "cpu", 3e9 * 4 / GB),  # case: fp32
        ("google/paligemma2-10b-mix-448", {}, "cuda", 10e9 * 2 / GB),  # case: bf16
        ("google/paligemma2-3b-mix-448", {"quantization": "int8"}, "cuda", 3e9 / GB),
        ("replay:/tmp/r.json", {}, "cpu", 0.0),  # case: a replay holds no weights
        ("some/model", {}, "cpu", 0.0),  # case: size unknown: assumed to fit
    ],
)
def test_estimate_weight_bytes(model_id, overrides, device, expected_gb) -> None:
    settings = Settings(**overrides)
    estimate = estimate_weight_bytes(model_id, settings, device)
    assert estimate / GB == pytest.approx(expected_gb)
