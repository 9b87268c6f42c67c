"""BACKEND=openai against a loopback engine that speaks vLLM's OpenAI shape."""

from __future__ import annotations

import base64
import io
import socket

import numpy as np
import pytest
from PIL import Image

import core.engine as model_manager
from core.config import Settings
from core.engine.openai import OpenAIBackend
from core.engine.openai_wire import TokenIdMap
from core.errors import ModelUnavailableError
from core.pipeline import analyze
from core.types import Intent
from tests.recorded import SHOE_DETECT, WHEELS_BOXES_PX, WHEELS_SEGMENT
from tests.support.openai_fake import FakeEngine, FakeEngineServer, encode_chars

RECORDING = {
    "segment left wheel ; right wheel": WHEELS_SEGMENT,
    "detect shoe": SHOE_DETECT,
    "caption en": "a red car parked on a street",
}
MODEL = "google/paligemma2-3b-mix-448"


def recorded(prompt: str, image: Image.Image, max_tokens: int) -> str:
    return RECORDING[prompt]


@pytest.fixture(scope="module")
def decoder(synthetic_vae_path):
    from core.mask_decoder import MaskDecoder

    return MaskDecoder.from_npz(synthetic_vae_path, warmup_buckets=(1, 2))


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine(answer=recorded)


@pytest.fixture
def server(engine):
    with FakeEngineServer(engine) as running:
        yield running


@pytest.fixture
def make_backend(tmp_path, decoder):
    made: list[OpenAIBackend] = []

    def make(url: str, *, load: bool = True, **overrides) -> OpenAIBackend:
        values = dict(backend="openai", backend_url=url, data_dir=str(tmp_path))
        backend = OpenAIBackend(Settings(**{**values, **overrides}))
        backend.mask_decoder = decoder  # the VAE is loaded once per module
        made.append(backend)
        if load:
            backend.load()
        return backend

    yield make
    for backend in made:
        backend.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    xx, yy = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([xx * 3 % 256, yy * 5 % 256, (xx + yy) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def test_request_is_one_user_turn_with_the_image_and_the_task(
    engine, server, make_backend
):
    backend = make_backend(server.url, backend_api_key="sk-engine")
    image = gradient()
    backend.generate(image, "detect shoe", max_new_tokens=30)
    body = engine.requests[-1]
    assert body["model"] == MODEL
    assert [m["role"] for m in body["messages"]] == ["user"]  # no system, no history
    image_part, text_part = body["messages"][0]["content"]
    assert text_part == {"type": "text", "text": "detect shoe"}
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    # lossless PNG at the model's input size (MODEL ends in -448), resized as
    # the SigLIP processor resizes, so the engine's own resize is a no-op
    expected = image.resize((448, 448), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(sent), np.asarray(expected))
    assert body["max_tokens"] == 30
    assert body["temperature"] == 0.0
    assert body["skip_special_tokens"] is False
    assert body["spaces_between_special_tokens"] is False
    assert body["return_token_ids"] is True
    assert body["stream"] is False
    assert engine.headers[-1]["Authorization"] == "Bearer sk-engine"


def test_backend_image_px_overrides_the_size_in_the_model_id(
    engine, server, make_backend
):
    backend = make_backend(server.url, backend_image_px=224)
    backend.generate(gradient(640, 480), "detect shoe", max_new_tokens=5)
    url = engine.requests[-1]["messages"][0]["content"][0]["image_url"]["url"]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.size == (224, 224)


@pytest.mark.parametrize(
    ("decoding", "expected", "absent"),
    [
        ({}, {"temperature": 0.0}, {"top_p", "top_k"}),  # greedy
        (
            {"do_sample": True, "top_p": 0.3, "top_k": 0},
            {"temperature": 1.0, "top_p": 0.3},
            {"top_k"},
        ),  # nucleus preset: top_k 0 means no cut
        (
            {"do_sample": True, "temperature": 0.5, "top_k": 40},
            {"temperature": 0.5, "top_k": 40},
            {"top_p"},
        ),  # temperature + top-k
        (
            {"do_sample": False, "top_p": 0.3},
            {"temperature": 0.0},
            {"top_p"},
        ),  # ignored
    ],
)
def test_decoding_options_map_to_sampling_fields(
    engine, server, make_backend, decoding, expected, absent
):
    backend = make_backend(server.url)
    backend.generate(gradient(), "caption en", max_new_tokens=20, **decoding)
    body = engine.requests[-1]
    assert {key: body[key] for key in expected} == expected
    assert absent.isdisjoint(body)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("knobs", "prompt"),
    [
        ({}, "segment left wheel ; right wheel"),  # ids agree with the text
        ({"mangle_text": True}, "segment left wheel ; right wheel"),  # ids win
        ({"mangle_text": True}, "detect shoe"),  # boxes only
        ({"with_token_ids": False}, "detect shoe"),  # no ids: the text is kept
        ({}, "caption en"),  # no loc/seg tokens at all
    ],
)
def test_answer_is_the_recording_with_tokens_from_ids(
    engine, server, make_backend, knobs, prompt, stream
):
    for name, value in knobs.items():
        setattr(engine, name, value)
    backend = make_backend(server.url)
    pieces: list[str] = []
    on_text = pieces.append if stream else None
    answer = backend.generate(gradient(), prompt, max_new_tokens=200, on_text=on_text)
    assert answer == RECORDING[prompt]
    assert answer.truncated is False
    assert answer.num_tokens == len(encode_chars(RECORDING[prompt])) + 1  # + EOS
    assert engine.requests[-1]["stream"] is stream
    if stream:
        assert len(pieces) > 1
        assert "".join(pieces) == engine.text_of(encode_chars(RECORDING[prompt]))


@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_length_marks_the_answer_truncated(
    engine, server, make_backend, stream
):
    backend = make_backend(server.url)
    on_text = (lambda piece: None) if stream else None
    answer = backend.generate(
        gradient(), "detect shoe", max_new_tokens=6, on_text=on_text
    )
    assert answer.truncated is True
    assert answer == "<loc0051><loc0309><loc0708><loc0646> s"
    assert answer.num_tokens == 6


def test_loc_and_seg_ids_are_learnt_from_the_engine_tokenizer(
    engine, server, make_backend
):
    engine.encode = lambda text: encode_chars(text, loc_base=300)  # a tiny vocab
    engine.mangle_text = True
    backend = make_backend(server.url)
    assert backend.token_ids == TokenIdMap(loc_base=300, seg_base=300 + 1024)
    answer = backend.generate(gradient(), "detect shoe", max_new_tokens=30)
    assert answer == SHOE_DETECT


@pytest.mark.parametrize(
    ("error", "match"),
    [
        (
            (500, '{"error": {"message": "CUDA out of memory", "code": 500}}'),
            r"HTTP 500: CUDA out of memory",
        ),  # engine 5xx, OpenAI shape
        (
            (400, '{"object": "error", "message": "max_tokens too large"}'),
            r"HTTP 400: max_tokens too large",
        ),  # older vLLM shape
        ((401, '{"error": "Unauthorized"}'), r"HTTP 401.*BACKEND_API_KEY"),  # key
        ((502, "Bad gateway"), r"HTTP 502: Bad gateway"),  # a proxy's plain body
        ((200, "<html>not json</html>"), r"malformed answer .*non-JSON"),
        ((200, '{"choices": []}'), r"malformed answer .*chat completion"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_engine_errors_are_clear(engine, server, make_backend, error, match, stream):
    backend = make_backend(server.url)
    engine.error = error
    on_text = (lambda piece: None) if stream else None
    if stream and error[0] == 200:
        match = r"malformed answer"  # the stream is not SSE
    with pytest.raises(ModelUnavailableError, match=match) as caught:
        backend.generate(gradient(), "detect shoe", max_new_tokens=9, on_text=on_text)
    assert server.url in caught.value.message
    engine.error = None  # the engine recovers: the backend still works
    assert backend.generate(gradient(), "detect shoe", max_new_tokens=30) == (
        SHOE_DETECT
    )


@pytest.mark.parametrize("stream", [False, True])
def test_a_slow_engine_times_out_with_the_setting_named(
    engine, server, make_backend, stream
):
    backend = make_backend(server.url, backend_timeout_s=0.3)
    engine.delay_s = 1.0
    on_text = (lambda piece: None) if stream else None
    with pytest.raises(ModelUnavailableError, match=r"within 0.3 s.*BACKEND_TIMEOUT_S"):
        backend.generate(gradient(), "detect shoe", max_new_tokens=9, on_text=on_text)


def test_a_cut_stream_is_an_error_not_a_short_answer(engine, server, make_backend):
    backend = make_backend(server.url)
    engine.cut_stream_after = 5
    pieces: list[str] = []
    with pytest.raises(ModelUnavailableError, match="ended the answer stream early"):
        backend.generate(
            gradient(), "detect shoe", max_new_tokens=30, on_text=pieces.append
        )
    assert pieces == ["<loc0051>", "<loc0309>", "<loc0708>", "<loc0646>", " "]


def test_unreachable_engine_says_how_to_start_it_and_recovers(engine, make_backend):
    url = f"http://127.0.0.1:{free_port()}"
    backend = make_backend(url, load=False)
    with pytest.raises(ModelUnavailableError, match=r"Cannot reach .*`vllm serve"):
        backend.load()
    status = backend.status
    assert (status.state, status.model_loaded, status.backend) == (
        "failed",
        False,
        "openai",
    )
    assert url in status.error
    with pytest.raises(ModelUnavailableError, match="Cannot reach"):
        backend.generate(gradient(), "detect shoe", max_new_tokens=9)
    with FakeEngineServer(engine, port=int(url.rsplit(":", 1)[1])):
        backend.load()  # a failure is not final: the engine came up
        assert backend.status.state == "ready"
        assert backend.status.error is None
        assert backend.generate(gradient(), "detect shoe", max_new_tokens=30) == (
            SHOE_DETECT
        )


def test_background_load_retries_until_the_engine_is_up(engine, make_backend):
    port = free_port()
    backend = make_backend(f"http://127.0.0.1:{port}", load=False)
    backend.start_background_load()
    assert backend.wait_ready(0.3) is False
    with FakeEngineServer(engine, port=port):
        assert backend.wait_ready(10) is True
    assert backend.status.model_id == MODEL


@pytest.mark.parametrize(
    ("models", "model_id", "chosen", "match"),
    [
        (["pg2-448"], None, "pg2-448", None),  # auto: the only model served
        (["a", MODEL], None, MODEL, None),  # auto: the default checkpoint
        (["a", "b"], None, None, r"serves \['a', 'b'\]; set MODEL_ID"),
        (["a"], "b", None, r"not MODEL_ID=b: start it with `vllm serve b`"),
        ([], None, None, r"serves no model"),
    ],
)
def test_the_served_model_is_checked(
    engine, server, make_backend, models, model_id, chosen, match
):
    engine.models = models
    backend = make_backend(server.url, load=False, model_id=model_id)
    if match is None:
        backend.load()
        assert backend.status.model_id == chosen
    else:
        with pytest.raises(ModelUnavailableError, match=match):
            backend.load()


def test_segment_through_the_pipeline_gives_full_size_masks(
    tmp_path, server, synthetic_vae_path
):
    settings = Settings(
        backend="openai",
        backend_url=server.url + "/v1/",
        vae_path=str(synthetic_vae_path),
        data_dir=str(tmp_path),
    )
    backend = OpenAIBackend(settings)
    try:
        backend.load()  # checks the engine and loads the real MaskDecoder
        assert backend.status.vae_loaded
        intent = Intent(
            task="segment",
            prompt="segment left wheel ; right wheel",
            targets=("left wheel", "right wheel"),
        )
        result = analyze(Image.new("RGB", (640, 480)), intent, backend)
    finally:
        backend.close()
    assert [d.box_px for d in result.detections] == WHEELS_BOXES_PX
    assert [d.label for d in result.detections] == ["right wheel", "right wheel"]
    for detection in result.detections:
        assert detection.mask is not None
        assert detection.mask.shape == (480, 640)
        assert detection.mask.dtype == bool
        assert detection.mask.any()


def test_get_model_manager_chooses_the_engine(monkeypatch, tmp_path):
    monkeypatch.setattr(model_manager, "_REGISTRY", None)
    settings = Settings(
        backend="openai", backend_url="http://127.0.0.1:9", data_dir=str(tmp_path)
    )
    manager = model_manager.get_model_manager(settings)
    try:
        assert isinstance(manager, OpenAIBackend)
        assert manager.status.backend == "openai"
        assert manager.status.state == "idle"
    finally:
        manager.close()


def test_local_backend_status_reports_local(settings):
    assert model_manager.create_engine(settings).status.backend == "local"


def test_a_cancellable_request_streams_and_stops_at_the_next_piece(
    engine, server, make_backend
):
    import threading

    from core.errors import RequestCancelledError

    backend = make_backend(server.url)
    cancel = threading.Event()
    # Unwatched but cancellable (an API request): streamed, same answer.
    answer = backend.generate(
        gradient(), "detect shoe", max_new_tokens=60, cancel=cancel
    )
    assert engine.requests[-1]["stream"] is True
    assert answer == SHOE_DETECT
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        cancel.set()  # Stop pressed while the first piece shows

    with pytest.raises(RequestCancelledError):
        backend.generate(
            gradient(), "caption en", max_new_tokens=60, on_text=on_text, cancel=cancel
        )
    assert len(pieces) == 1  # the stream was closed at the next piece
