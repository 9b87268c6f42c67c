"""The local engine with BATCH_MAX > 1 and COMPILE=on, on the tiny PaliGemma 2.

Concurrent ``generate`` calls (as several queue workers make them) are
grouped into left-padded batches whose greedy answers equal one-at-a-time
answers; the compiled engine answers like the eager one.
"""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from core.config import Settings
from core.engine.compiled import TEXT_BUDGETS
from core.engine.local import ModelManager

REQUESTS = [  # (image colour, prompt, max_new_tokens): different prompt lengths
    ((200, 30, 30), "segment cat", 20),
    ((20, 130, 30), "detect cat ; dog ; the big brown bird on the left", 30),
    ((20, 30, 230), "caption en", 5),
    ((90, 90, 9), "ocr", 12),
]


def _manager(tmp_path, tiny_model_dir, vae, **overrides) -> ModelManager:
    settings = Settings(
        model_id=str(tiny_model_dir),
        vae_path=str(vae),
        data_dir=str(tmp_path / "data"),
        load_on_start=False,
        **overrides,
    )
    manager = ModelManager(settings)
    manager.load()
    return manager


def _ask(manager, colour, prompt, budget, **kwargs):
    image = Image.new("RGB", (40, 30), colour)
    return manager.generate(image, prompt, max_new_tokens=budget, **kwargs)


@pytest.fixture(scope="module")
def one_at_a_time(tiny_model_dir, synthetic_vae_path, tmp_path_factory):
    """The CPU default: BATCH_MAX 1, COMPILE off, model.generate."""
    manager = _manager(
        tmp_path_factory.mktemp("eager"), tiny_model_dir, synthetic_vae_path
    )
    assert manager._batcher is None  # the plain transformers path
    return [_ask(manager, *request) for request in REQUESTS]


def test_concurrent_requests_are_batched_and_answer_as_one_at_a_time(
    tmp_path, tiny_model_dir, synthetic_vae_path, one_at_a_time
) -> None:
    manager = _manager(tmp_path, tiny_model_dir, synthetic_vae_path, batch_max=4)
    batcher = manager._batcher
    run_batch, gate, started = batcher._run_batch, threading.Event(), threading.Event()

    def gated(requests):  # hold the first batch until all others wait
        if not started.is_set():
            started.set()
            assert gate.wait(30)
        return run_batch(requests)

    batcher._run_batch = gated
    results: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda i=i, r=r: results.update({i: _ask(manager, *r)}))
        for i, r in enumerate(REQUESTS)
    ]
    threads[0].start()
    assert started.wait(30)
    for thread in threads[1:]:
        thread.start()
    with batcher._wake:
        assert batcher._wake.wait_for(lambda: len(batcher._pending) == 3, 30)
    gate.set()
    for thread in threads:
        thread.join(60)
    assert [results[i] for i in range(len(REQUESTS))] == one_at_a_time
    assert batcher.batch_sizes == [1, 3]  # three requests shared one batch
    # truncation and token counts are per request, not per batch
    assert [r.num_tokens for r in one_at_a_time] == [
        results[i].num_tokens for i in range(len(REQUESTS))
    ]
    manager.close()


def test_batched_engine_streams_each_answer(
    tmp_path, tiny_model_dir, synthetic_vae_path, one_at_a_time
) -> None:
    manager = _manager(tmp_path, tiny_model_dir, synthetic_vae_path, batch_max=2)
    pieces: list[str] = []
    streamed = _ask(manager, *REQUESTS[1], on_text=pieces.append)
    assert streamed == one_at_a_time[1]
    assert "".join(pieces).strip() == str(streamed)
    manager.close()


def test_compiled_engine_answers_like_the_eager_one(
    tmp_path, tiny_model_dir, synthetic_vae_path, one_at_a_time
) -> None:
    # aot_eager: dynamo + AOT autograd without C++ codegen (inductor is
    # checked at decoder level in test_compiled.py)
    manager = _manager(
        tmp_path,
        tiny_model_dir,
        synthetic_vae_path,
        compile="on",
        compile_backend="aot_eager",
    )
    decoder = manager._decoder
    image_tokens = manager.processor.image_seq_length
    # warmed at load: every budget for batch 1, before any user asked
    assert decoder.compiled
    assert decoder.warmed == {(1, image_tokens + budget) for budget in TEXT_BUDGETS}
    answers = [_ask(manager, *request) for request in REQUESTS]
    assert answers == one_at_a_time
    manager.close()


@pytest.mark.parametrize(
    "env, device, expected",
    [
        ({}, "cpu", 1),  # CPU default: one at a time
        ({}, "cuda", 8),  # CUDA default
        ({"BATCH_MAX": "4"}, "cpu", 4),
        ({"BATCH_MAX": "auto"}, "cuda", 8),
        ({"BACKEND": "openai", "BACKEND_URL": "http://e:8000"}, "remote", 32),
    ],
)
def test_batch_size_setting(env, device, expected) -> None:
    assert Settings.from_env(env).batch_size(device) == expected


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"DEVICE": "cpu"}, 1),
        ({"DEVICE": "cuda"}, 8),  # the queue runs as many workers as a batch
        ({"DEVICE": "cuda", "QUEUE_MAX": "4"}, 4),  # never above QUEUE_MAX
        ({"DEVICE": "cpu", "BATCH_MAX": "3"}, 3),
        ({"BACKEND": "openai", "BACKEND_URL": "http://e:8000", "QUEUE_MAX": "64"}, 32),
        ({"MODEL_ID": "replay:x.json", "DEVICE": "cuda"}, 1),
    ],
)
def test_queue_workers_follow_the_batch_size(env, expected) -> None:
    assert Settings.from_env(env).model_workers == expected


@pytest.mark.parametrize(
    "env, message",
    [
        ({"BATCH_MAX": "0"}, "BATCH_MAX must be in 1..256, got 0"),
        ({"COMPILE": "fast"}, "COMPILE must be auto, on or off, got 'fast'"),
        ({"BACKEND_IMAGE_PX": "10"}, "BACKEND_IMAGE_PX must be in 64..2048, got 10"),
    ],
)
def test_bad_settings_are_refused(env, message) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_settings_read_compile_options() -> None:
    settings = Settings.from_env({"COMPILE": "OFF", "COMPILE_BACKEND": "aot_eager"})
    assert (settings.compile, settings.compile_backend) == ("off", "aot_eager")


@pytest.mark.parametrize(
    "compile_mode, device, quantization, expected",
    [
        ("auto", "cuda", "none", True),
        ("auto", "cpu", "none", False),
        ("auto", "cuda", "int8", False),  # bitsandbytes layers do not compile
        ("on", "cpu", "none", True),
        ("off", "cuda", "none", False),
    ],
)
def test_compile_wanted(compile_mode, device, quantization, expected) -> None:
    from core.engine.decoding import compile_wanted

    settings = Settings(compile=compile_mode, quantization=quantization)
    assert compile_wanted(settings, device) is expected


def test_without_a_c_compiler_auto_decodes_eager_and_on_is_refused(monkeypatch):
    from core.engine import decoding
    from core.errors import ModelUnavailableError

    monkeypatch.setattr(decoding.shutil, "which", lambda name: None)
    assert decoding.compile_wanted(Settings(compile="auto"), "cuda") is False
    with pytest.raises(ModelUnavailableError, match="gcc was not found"):
        decoding.compile_wanted(Settings(compile="on"), "cuda")
    # another backend needs no compiler
    settings = Settings(compile="on", compile_backend="aot_eager")
    assert decoding.compile_wanted(settings, "cpu") is True


def test_each_row_of_a_batch_streams_only_its_own_answer(
    tmp_path, tiny_model_dir, synthetic_vae_path, one_at_a_time
) -> None:
    from core.engine.base import GenerationParams
    from core.engine.local import _Request

    manager = _manager(tmp_path, tiny_model_dir, synthetic_vae_path, batch_max=2)
    pieces: list[list[str]] = [[], []]
    short, long = REQUESTS[2], REQUESTS[1]  # budgets 5 and 30, one batch
    requests = [
        _Request(
            Image.new("RGB", (40, 30), colour),
            prompt,
            GenerationParams(budget),
            pieces[row].append,
        )
        for row, (colour, prompt, budget) in enumerate((short, long))
    ]
    answers = manager._run_batch(requests)
    assert answers == [one_at_a_time[2], one_at_a_time[1]]
    # the short row stops streaming at its budget while the batch decodes on
    assert ["".join(p).strip() for p in pieces] == [str(a) for a in answers]
    manager.close()


def test_a_cancelled_row_stops_within_a_token_and_the_batch_goes_on(
    tmp_path, tiny_model_dir, synthetic_vae_path, one_at_a_time
) -> None:
    from core.engine.base import GenerationParams
    from core.engine.local import _Request

    manager = _manager(tmp_path, tiny_model_dir, synthetic_vae_path, batch_max=2)
    gave_up = threading.Event()
    gave_up.set()  # the caller left before its answer began
    colour, prompt, budget = REQUESTS[0]
    requests = [
        _Request(
            Image.new("RGB", (40, 30), colour), prompt, GenerationParams(budget), None
        ),
        _Request(
            Image.new("RGB", (40, 30), colour),
            prompt,
            GenerationParams(budget),
            None,
            gave_up,
        ),
    ]
    kept, cancelled = manager._run_batch(requests)
    assert kept == one_at_a_time[0]
    assert cancelled.num_tokens == 1 and cancelled.truncated is False
    manager.close()


def test_a_photos_tiles_reach_the_model_as_one_batch(
    tmp_path, tiny_model_dir, synthetic_vae_path
) -> None:
    """core.tiling sends tiles as wide as the engine batches: on the real
    transformers path, the whole photo first, then its 4 tiles together."""
    from core.intent import parse_intent
    from core.tiling import analyze_tiled

    manager = _manager(tmp_path, tiny_model_dir, synthetic_vae_path, batch_max=4)
    batcher = manager._batcher
    run_batch, gate, held = batcher._run_batch, threading.Event(), threading.Event()
    first_tiles: list[int] = []

    def gated(requests):  # hold the first tiles' batch until the rest wait
        if len(batcher.batch_sizes) == 2 and not held.is_set():
            first_tiles.append(len(requests))
            held.set()
            assert gate.wait(30)
        return run_batch(requests)

    batcher._run_batch = gated
    image = Image.new("RGB", (800, 600), (120, 80, 40))
    intent = parse_intent("detect cat")
    done = {}
    worker = threading.Thread(
        target=lambda: done.update(r=analyze_tiled(image, intent, manager, (2, 2)))
    )
    worker.start()
    assert held.wait(60)
    (taken,) = first_tiles
    with batcher._wake:  # every other tile is submitted while that batch runs
        assert batcher._wake.wait_for(lambda: len(batcher._pending) == 4 - taken, 30)
    gate.set()
    worker.join(120)
    # the whole photo alone, then the 4 tiles in at most two batches: all four
    # were in flight at once (one at a time would be [1, 1, 1, 1, 1])
    assert batcher.batch_sizes == [1, taken] + ([4 - taken] if taken < 4 else [])
    assert done["r"].timings_s["tiles"] == 4
    manager.close()
