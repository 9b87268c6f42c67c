from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from dataclasses import fields
from pathlib import Path

import pytest

from core.config import _ENV_FIELDS, Settings, default_model_id

ROOT = Path(__file__).resolve().parent.parent


def test_every_field_has_an_env_variable_documented_in_env_example():
    assert {f.name for f in fields(Settings)} == {name for name, _, _ in _ENV_FIELDS}
    example = (ROOT / ".env.example").read_text()
    for _, env_name, _ in _ENV_FIELDS:
        assert f"\n{env_name}=" in example, f"{env_name} missing from .env.example"


def test_every_env_variable_is_in_the_readme_configuration_table():
    readme = (ROOT / "README.md").read_text()
    missing = [env for _, env, _ in _ENV_FIELDS if f"`{env}`" not in readme]
    assert not missing, f"README.md configuration table lacks {missing}"


def test_env_example_values_parse():
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    settings = Settings.from_env(values)
    assert settings == Settings(
        data_dir=str(Path("~/.cache/paligemma-chat").expanduser())
    )


@pytest.mark.parametrize(
    ("env", "field", "value", "expectation"),
    [
        ({}, "port", 8010, does_not_raise()),  # default port
        ({"PORT": "9000"}, "port", 9000, does_not_raise()),  # custom port
        ({"MODEL_ID": "auto"}, "model_id", None, does_not_raise()),  # auto
        ({"MODEL_ID": "/models/pg2"}, "model_id", "/models/pg2", does_not_raise()),
        ({"DEVICE": "CUDA"}, "device", "cuda", does_not_raise()),  # case-insensitive
        ({"MAX_NEW_TOKENS": "auto"}, "max_new_tokens", None, does_not_raise()),
        ({"MAX_NEW_TOKENS": "64"}, "max_new_tokens", 64, does_not_raise()),
        ({"HF_TOKEN": ""}, "hf_token", None, does_not_raise()),  # empty = unset
        ({"HF_TOKEN": "hf_x"}, "hf_token", "hf_x", does_not_raise()),
        ({"LOAD_ON_START": "no"}, "load_on_start", False, does_not_raise()),
        (
            {"MODEL_ALLOWLIST": "a, b,,"},
            "model_allowlist",
            ("a", "b"),
            does_not_raise(),
        ),
        ({"DEVICE": "tpu"}, "device", None, pytest.raises(ValueError, match="DEVICE")),
        ({"PORT": "http"}, "port", None, pytest.raises(ValueError, match="PORT")),
        ({"PORT": "70000"}, "port", None, pytest.raises(ValueError, match="PORT")),
        ({"DTYPE": "int8"}, "dtype", None, pytest.raises(ValueError, match="DTYPE")),
        ({"LOAD_ON_START": "maybe"}, "load_on_start", None, pytest.raises(ValueError)),
        ({"MAX_NEW_TOKENS": "0"}, "max_new_tokens", None, pytest.raises(ValueError)),
        ({"MAX_DETECTIONS": "250"}, "max_detections", 250, does_not_raise()),
        (
            {"MAX_DETECTIONS": "0"},
            "max_detections",
            None,
            pytest.raises(ValueError, match=r"MAX_DETECTIONS must be in 1\.\.10000"),
        ),  # case: no objects at all is no setting
        (
            {"MAX_CONCURRENT_DECODES": "0"},
            "max_concurrent_decodes",
            None,
            pytest.raises(ValueError, match="MAX_CONCURRENT_DECODES"),
        ),
        (
            {"MAX_NEW_TOKENS_LIMIT": "4096"},
            "max_new_tokens_limit",
            None,
            pytest.raises(ValueError, match="MAX_NEW_TOKENS_LIMIT"),
        ),
        ({}, "disconnect_grace_s", 20.0, does_not_raise()),
        ({"DISCONNECT_GRACE_S": "0"}, "disconnect_grace_s", 0.0, does_not_raise()),
        (
            {"DISCONNECT_GRACE_S": "-1"},
            "disconnect_grace_s",
            None,
            pytest.raises(ValueError, match=r"DISCONNECT_GRACE_S must be in 0\.\.600"),
        ),
    ],
)
def test_from_env(env, field, value, expectation):
    with expectation:
        assert getattr(Settings.from_env(env), field) == value


@pytest.mark.parametrize(
    ("device", "model_id"),
    [("cuda", "google/paligemma2-3b-mix-448"), ("cpu", "google/paligemma2-3b-mix-224")],
)
def test_default_model_per_device(device, model_id):
    assert default_model_id(device) == model_id


@pytest.mark.parametrize(
    ("env", "workers"),
    [
        ({"DEVICE": "cpu"}, 1),  # in-process model on CPU: one run at a time
        ({"DEVICE": "cuda"}, 8),  # CUDA: BATCH_MAX 8, one worker per batch row
        # the engine batches 32 (BATCH_MAX auto); QUEUE_MAX (16) caps the workers
        ({"BACKEND": "openai", "BACKEND_URL": "http://e:8000"}, 16),
        ({"BACKEND": "openai", "BACKEND_URL": "http://e:8000", "QUEUE_MAX": "3"}, 3),
    ],
)
def test_model_workers(env, workers):
    assert Settings.from_env(env).model_workers == workers
