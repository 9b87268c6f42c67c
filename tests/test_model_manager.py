"""ModelManager on the tiny offline PaliGemma 2: loading, generate, errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

import core.engine as engine
from core.config import Settings
from core.engine import local as mm
from core.engine.hub import hub_error_message
from core.errors import ModelUnavailableError
from core.types import GeneratedText

IMAGE = Image.new("RGB", (64, 48), (200, 30, 30))


def _settings(tmp_path: Path, model_id: str | Path, vae_path: str | Path) -> Settings:
    return Settings(
        model_id=str(model_id),
        vae_path=str(vae_path),
        data_dir=str(tmp_path / "data"),
        load_on_start=False,
    )


@pytest.fixture(scope="module")
def manager(tiny_model_dir: Path, synthetic_vae_path: Path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("manager")
    loaded = mm.ModelManager(_settings(tmp, tiny_model_dir, synthetic_vae_path))
    loaded.load()
    return loaded


@pytest.fixture
def no_vae(tmp_path: Path) -> Path:
    return tmp_path / "missing-vae.npz"  # fails fast: VAE_PATH does not exist


def test_import_loads_no_torch_transformers_or_jax() -> None:
    code = (
        "import sys, core.engine.local; "
        "print(sorted({'torch', 'transformers', 'jax'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_new_manager_is_idle_and_refuses_generate(tmp_path, tiny_model_dir, no_vae):
    fresh = mm.ModelManager(_settings(tmp_path, tiny_model_dir, no_vae))
    status = fresh.status
    assert (status.state, status.model_loaded, status.vae_loaded) == (
        "idle",
        False,
        False,
    )
    with pytest.raises(ModelUnavailableError, match="still loading"):
        fresh.generate(IMAGE, "caption en", max_new_tokens=3)


def test_loaded_status_is_ready_on_cpu_float32(manager: mm.ModelManager) -> None:
    status = manager.status
    assert status.state == "ready"
    assert (status.device, status.dtype) == ("cpu", "float32")
    assert status.model_loaded and status.vae_loaded
    assert status.error is None
    assert status.load_seconds is not None and status.load_seconds > 0


def test_second_load_is_a_no_op(manager: mm.ModelManager) -> None:
    model, processor = manager.model, manager.processor
    manager.load()
    assert manager.model is model and manager.processor is processor


@pytest.mark.parametrize("max_new_tokens", [1, 4, 12])  # case: budget sizes
def test_generate_respects_budget_and_reports_truncation(manager, max_new_tokens):
    out = manager.generate(IMAGE, "detect cat", max_new_tokens=max_new_tokens)
    assert isinstance(out, GeneratedText)
    assert 1 <= out.num_tokens <= max_new_tokens
    assert out == out.strip()
    # The random tiny model never emits <eos> within 12 tokens: every run is cut.
    assert out.truncated == (out.num_tokens == max_new_tokens)


def test_generate_is_not_truncated_when_eos_arrives(manager, monkeypatch) -> None:
    first = manager.generate(IMAGE, "detect cat", max_new_tokens=1)
    first_id = manager.processor.tokenizer.convert_tokens_to_ids(str(first))
    # Declare the model's own first greedy token the end-of-sequence token.
    monkeypatch.setattr(manager.model.generation_config, "eos_token_id", [first_id])
    out = manager.generate(IMAGE, "detect cat", max_new_tokens=5)
    assert (out.truncated, out.num_tokens) == (False, 1)


def test_loc_and_seg_tokens_survive_decoding(manager) -> None:
    out = manager.generate(IMAGE, "segment cat", max_new_tokens=20)
    assert "<loc" in out or "<seg" in out  # this seed answers with loc tokens
    assert "<image>" not in out and "<bos>" not in out


def test_greedy_generate_is_deterministic_and_image_token_in_prompt_is_removed(
    manager,
) -> None:
    first = manager.generate(IMAGE, "caption en", max_new_tokens=8)
    again = manager.generate(IMAGE, "caption en<image>", max_new_tokens=8)
    assert str(first) == str(again)


def test_sampling_options_reach_transformers_generate(manager, monkeypatch) -> None:
    seen: list[dict] = []
    original = manager.model.generate

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(manager.model, "generate", spy)
    out = manager.generate(
        IMAGE,
        "caption en",
        max_new_tokens=6,
        do_sample=True,
        top_p=0.3,
        top_k=0,
        temperature=0.7,
    )
    greedy = manager.generate(IMAGE, "caption en", max_new_tokens=6)
    assert 1 <= out.num_tokens <= 6 and 1 <= greedy.num_tokens <= 6
    sampled, plain = seen
    options = ("do_sample", "top_p", "top_k", "temperature", "max_new_tokens")
    assert {k: sampled.get(k) for k in options} == {
        "do_sample": True,
        "top_p": 0.3,
        "top_k": 0,
        "temperature": 0.7,
        "max_new_tokens": 6,
    }
    assert plain.get("do_sample") is False  # greedy: no sampling options sent
    assert {"top_p", "top_k", "temperature"}.isdisjoint(plain)


def test_concurrent_generate_calls_are_serialised(manager, monkeypatch) -> None:
    active, peak = [0], [0]
    counter_lock = threading.Lock()
    original = manager.model.generate

    def counting_generate(*args, **kwargs):
        with counter_lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.02)  # widen the window in which overlap would show
            return original(*args, **kwargs)
        finally:
            with counter_lock:
                active[0] -= 1

    monkeypatch.setattr(manager.model, "generate", counting_generate)
    results: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                manager.generate(IMAGE, "detect cat", max_new_tokens=6)
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and len(set(results)) == 1
    assert peak[0] == 1


def test_decode_masks_uses_the_vae(manager, synthetic_vae_path: Path) -> None:
    from core.mask_decoder import MaskDecoder

    codes = np.arange(32).reshape(2, 16) % 128
    masks = manager.decode_masks(codes)
    assert masks.shape == (2, 64, 64) and masks.dtype == np.float32
    expected = MaskDecoder.from_npz(synthetic_vae_path, warmup_buckets=()).decode(codes)
    np.testing.assert_allclose(masks, expected, atol=1e-6)


def test_missing_vae_leaves_the_model_usable(tmp_path, tiny_model_dir, no_vae):
    manager = mm.ModelManager(_settings(tmp_path, tiny_model_dir, no_vae))
    manager.load()
    status = manager.status
    assert (status.state, status.model_loaded, status.vae_loaded) == (
        "ready",
        True,
        False,
    )
    assert status.error is not None and "VAE_PATH" in status.error
    assert manager.generate(IMAGE, "detect cat", max_new_tokens=3).num_tokens == 3
    with pytest.raises(ModelUnavailableError, match="VAE_PATH"):
        manager.decode_masks(np.zeros((1, 16), dtype=np.int64))


def _missing_dir(tmp_path: Path) -> Path:
    return tmp_path / "nowhere"


def _empty_dir(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a model")
    return tmp_path / "empty"


def _other_model_dir(tmp_path: Path) -> Path:
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    return tmp_path / "bert"


@pytest.mark.parametrize(
    ("make_dir", "expected"),
    [
        (_missing_dir, "which is not a directory"),  # case: path does not exist
        (_empty_dir, "not a model checkpoint"),  # case: folder without config.json
        (_other_model_dir, "expected a PaliGemma checkpoint"),  # case: wrong model
    ],
)
def test_bad_local_model_id_fails_clearly(tmp_path, no_vae, make_dir, expected):
    manager = mm.ModelManager(_settings(tmp_path, make_dir(tmp_path), no_vae))
    with pytest.raises(ModelUnavailableError, match=expected):
        manager.load()
    status = manager.status
    assert status.state == "failed" and expected in (status.error or "")
    assert not status.model_loaded
    with pytest.raises(ModelUnavailableError, match=expected):
        manager.load()  # recorded failure, not a second attempt
    assert manager.wait_ready(0.1) is False
    with pytest.raises(ModelUnavailableError, match=expected):
        manager.generate(IMAGE, "caption en", max_new_tokens=2)


def test_checkpoint_that_cannot_run_fails_at_load(tmp_path, tiny_model_dir, no_vae):
    import json
    import shutil

    broken = Path(shutil.copytree(tiny_model_dir, tmp_path / "broken"))
    config_path = broken / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["image_processor"]["image_seq_length"] = 8  # the tower gives 16
    config_path.write_text(json.dumps(config))
    manager = mm.ModelManager(_settings(tmp_path, broken, no_vae))
    with pytest.raises(ModelUnavailableError, match="loaded but could not run"):
        manager.load()
    assert manager.status.state == "failed"
    assert manager.wait_ready(0.1) is False


def test_hub_id_offline_fails_fast_with_the_fix(tmp_path, no_vae, monkeypatch):
    import huggingface_hub.constants

    # What HF_HUB_OFFLINE=1 sets when huggingface_hub is imported; empty cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    manager = mm.ModelManager(
        _settings(tmp_path, "google/paligemma2-3b-mix-224", no_vae)
    )
    sent: list[str] = []  # fails fast = never waits on the network

    def no_network(self, request, *args, **kwargs):
        sent.append(str(request.url))
        raise httpx.ConnectError("tests send nothing", request=request)

    monkeypatch.setattr(httpx.Client, "send", no_network)
    with pytest.raises(ModelUnavailableError) as caught:
        manager.load()
    assert sent == []
    message = caught.value.message
    assert "google/paligemma2-3b-mix-224 could not be downloaded" in message
    assert "MODEL_ID=/path/to/a/local/copy" in message
    assert manager.status.state == "failed"


def _http_error(cls, status: int, text: str):
    request = httpx.Request("GET", "https://huggingface.co/x/y/resolve/main/f")
    return cls(text, response=httpx.Response(status, request=request))


def _wrapped(inner: BaseException) -> OSError:
    try:
        raise OSError("transformers wrapper") from inner
    except OSError as exc:
        return exc


def _cases():
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    return [
        (
            _wrapped(_http_error(GatedRepoError, 401, "gated")),
            "accepted the PaliGemma license at https://huggingface.co/org/m",
        ),  # case: gated, no token
        (_http_error(HfHubHTTPError, 403, "forbidden"), "set HF_TOKEN"),  # case: 403
        (
            _wrapped(_http_error(RepositoryNotFoundError, 404, "no")),
            "could not be downloaded: Hugging Face has no such model",
        ),  # case: typo
        (
            _wrapped(LocalEntryNotFoundError("no cache")),
            "HF_HUB_OFFLINE",
        ),  # case: no network and no cache
        (
            OfflineModeIsEnabled("offline"),
            "not in the local Hugging Face cache",
        ),  # case: offline
        (
            OfflineModeIsEnabled("offline"),
            "set HF_TOKEN to a token of an account that accepted the license at "
            "https://huggingface.co/org/m",
        ),  # case: offline, the gated-model fix for when the network is back
        (
            RuntimeError("disk full"),
            "could not be loaded (RuntimeError: disk full)",
        ),  # case: other
    ]


@pytest.mark.parametrize(("error", "expected"), _cases())
def test_hub_errors_map_to_messages_with_the_fix(error, expected) -> None:
    message = hub_error_message("org/m", error)
    assert expected in message
    assert "MODEL_ID=/path/to/a/local/copy" in message


def test_background_load_then_wait_ready(tmp_path, tiny_model_dir, no_vae) -> None:
    manager = mm.ModelManager(_settings(tmp_path, tiny_model_dir, no_vae))
    thread = manager.start_background_load()
    assert manager.start_background_load() is thread
    assert manager.wait_ready(120) is True
    thread.join(5)
    assert not thread.is_alive() and manager.status.state == "ready"


def test_get_model_manager_is_one_per_process(monkeypatch, settings) -> None:
    monkeypatch.setattr(engine, "_REGISTRY", None)
    seen: list[mm.ModelManager] = []
    threads = [
        threading.Thread(target=lambda: seen.append(engine.get_model_manager(settings)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(m is seen[0] for m in seen)
    assert seen[0].status.state == "idle"  # creating it loads nothing
    assert engine.get_model_manager() is seen[0]


def _count_vision_runs(manager: mm.ModelManager) -> tuple[list[int], object]:
    runs = [0]
    tower = manager.model.model.vision_tower
    hook = tower.register_forward_hook(lambda *_: runs.__setitem__(0, runs[0] + 1))
    return runs, hook


@pytest.fixture(scope="module")
def uncached(tiny_model_dir: Path, tmp_path_factory) -> mm.ModelManager:
    tmp = tmp_path_factory.mktemp("uncached")
    manager = mm.ModelManager(
        _settings(tmp, tiny_model_dir, tmp / "no-vae.npz"), feature_cache_size=0
    )
    manager.load()
    return manager


def test_vision_features_are_reused_across_prompts(manager, uncached) -> None:
    image = Image.new("RGB", (50, 70), (10, 120, 240))  # not seen before
    prompts = ["detect cat", "segment cat ; dog", "caption en", "detect cat"]
    runs, hook = _count_vision_runs(manager)
    plain_runs, plain_hook = _count_vision_runs(uncached)
    try:
        cached_out = [manager.generate(image, p, max_new_tokens=10) for p in prompts]
        plain_out = [uncached.generate(image, p, max_new_tokens=10) for p in prompts]
    finally:
        hook.remove()
        plain_hook.remove()
    assert runs[0] == 1 and plain_runs[0] == len(prompts)
    assert [str(t) for t in cached_out] == [str(t) for t in plain_out]
    assert [t.num_tokens for t in cached_out] == [t.num_tokens for t in plain_out]


def test_manager_output_matches_plain_transformers_generate(manager) -> None:
    import torch

    image = Image.new("RGB", (33, 21), (0, 200, 90))
    inputs = manager.processor(
        images=image, text="<image>detect cat", return_tensors="pt"
    )
    with torch.inference_mode():
        ids = manager.model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            token_type_ids=inputs["token_type_ids"],
            pixel_values=inputs["pixel_values"],
            max_new_tokens=10,
            do_sample=False,
        )
    new_ids = ids[0, inputs["input_ids"].shape[1] :]
    expected = manager.processor.decode(new_ids, skip_special_tokens=True).strip()
    for _ in range(2):  # first computes the features, second reads the cache
        assert str(manager.generate(image, "detect cat", max_new_tokens=10)) == expected


@pytest.mark.parametrize(
    ("cache_size", "expected_runs"),
    [
        (0, 4),  # case: cache off, every call runs the tower
        (1, 4),  # case: A B A B with room for one evicts each time
        (2, 2),  # case: both images fit
    ],
)
def test_feature_cache_is_a_bounded_lru(
    tmp_path, tiny_model_dir, no_vae, cache_size, expected_runs
) -> None:
    manager = mm.ModelManager(
        _settings(tmp_path, tiny_model_dir, no_vae), feature_cache_size=cache_size
    )
    manager.load()
    first, second = (
        Image.new("RGB", (40, 40), "red"),
        Image.new("RGB", (40, 40), "blue"),
    )
    runs, hook = _count_vision_runs(manager)
    try:
        for image in (first, second, first, second):
            manager.generate(image, "caption en", max_new_tokens=2)
    finally:
        hook.remove()
    assert runs[0] == expected_runs
    assert len(manager._features) == min(cache_size, 2)


def test_negative_cache_size_is_rejected(settings) -> None:
    with pytest.raises(ValueError, match="feature_cache_size must be >= 0, got -1"):
        mm.ModelManager(settings, feature_cache_size=-1)


def test_on_text_streams_the_same_answer(tiny_model_dir, synthetic_vae_path, tmp_path):
    manager = mm.ModelManager(
        Settings(
            model_id=str(tiny_model_dir),
            vae_path=str(synthetic_vae_path),
            data_dir=str(tmp_path),
        )
    )
    manager.load()
    image = Image.new("RGB", (40, 30), "green")
    pieces: list[str] = []
    streamed = manager.generate(
        image, "caption en", max_new_tokens=12, on_text=pieces.append
    )
    plain = manager.generate(image, "caption en", max_new_tokens=12)
    assert streamed == plain
    assert len(pieces) >= 1
    assert "".join(pieces).strip() == str(plain)


class SetAfter(threading.Event):
    """A cancel event that reads as set from its ``checks``+1-th look on."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.looks, self.checks = 0, checks

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.checks


def test_cancel_stops_generation_at_the_next_token(manager) -> None:
    from core.engine.base import GenerationParams

    params = GenerationParams(max_new_tokens=12)
    # The stopping criterion looks once per new token: set on the 3rd look.
    out = manager._generate(IMAGE, "detect cat", params, None, SetAfter(2))
    assert out.num_tokens == 3  # 12 without the cancel (see the budget test)


def test_cancelled_before_the_run_raises_without_running(manager) -> None:
    from core.errors import RequestCancelledError

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RequestCancelledError, match="cancelled"):
        manager.generate(IMAGE, "detect cat", max_new_tokens=4, cancel=cancel)
