"""The OpenAI wire format and backend settings: pure functions, no server."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.engine.base import GenerationParams
from core.engine.openai_errors import engine_root
from core.engine.openai_wire import (
    TokenIdMap,
    chat_request,
    image_to_data_url,
    input_side_px,
    rebuild_text,
)


@pytest.mark.parametrize(
    ("text", "ids", "expected"),
    [
        ("<loc0001> a", [256002, 10], "<loc0002> a"),  # the id wins
        ("<loc0001><eos>", [256001, 1], "<loc0001>"),  # specials dropped
        (
            " cat ; dog",
            [*range(256001, 256005), 9, 9, *range(256005, 256009), 9],
            "<loc0001><loc0002><loc0003><loc0004> cat ; "
            "<loc0005><loc0006><loc0007><loc0008> dog",
        ),  # tokens lost from the text: labels split at ";"
        (
            "",
            [*range(256001, 256005), 257030],
            "<loc0001><loc0002><loc0003><loc0004><seg006>",
        ),  # no text at all: the ids alone
        ("<seg003> x", None, "<seg003> x"),  # no ids: the text
    ],
)
def test_rebuild_text_from_token_ids(text, ids, expected):
    assert rebuild_text(text, ids, TokenIdMap()) == expected


@pytest.mark.parametrize(
    ("url", "root"),
    [
        ("http://localhost:8000", "http://localhost:8000"),  # plain
        ("http://localhost:8000/v1/", "http://localhost:8000"),  # with /v1
        ("https://llm.example.com/pg/v1", "https://llm.example.com/pg"),  # prefix
    ],
)
def test_engine_root(url, root):
    assert engine_root(url) == root


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"BACKEND": "openai"}, "needs BACKEND_URL"),  # no URL
        ({"BACKEND": "triton"}, "BACKEND must be local or openai"),
        ({"BACKEND_TIMEOUT_S": "0"}, "BACKEND_TIMEOUT_S must be > 0"),
    ],
)
def test_backend_settings_are_checked(env, match):
    with pytest.raises(ValueError, match=match):
        Settings.from_env(env)


def _sent(url: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_large_images_are_downscaled_before_upload_without_an_input_size():
    url = image_to_data_url(Image.new("RGB", (4096, 1024)), max_side=2048)
    assert _sent(url).size == (2048, 512)


def test_images_go_up_at_the_model_input_size_as_the_processor_resizes():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (3024, 4032, 3), dtype=np.uint8))
    url = image_to_data_url(photo, side_px=448)
    sent = _sent(url)
    assert sent.size == (448, 448)
    # the pixels the SigLIP processor would compute from the original
    expected = photo.resize((448, 448), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(sent), np.asarray(expected))
    full = image_to_data_url(photo)  # the old way: up to 2048 px
    assert len(url) * 10 < len(full)


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("google/paligemma2-3b-mix-448", 448),
        ("google/paligemma2-10b-pt-896", 896),
        ("google/paligemma2-3b-mix-224", 224),
        ("my-org/paligemma-finetune", None),  # states no size
        ("google/paligemma2-3b-mix-4480", None),  # not a size suffix
    ],
)
def test_input_side_from_the_model_id(model_id, expected):
    assert input_side_px(model_id) == expected


def test_streamed_requests_ask_for_usage():
    body = chat_request("m", "data:,", "ocr", GenerationParams(5), stream=True)
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([256000, 257023, 257024, 257151], TokenIdMap()),  # the real tokenizer
        ([300, 1323, 1324, 1451], TokenIdMap(300, 1324)),  # a tiny one
        ([300, 1300, 1324, 1451], None),  # locs not contiguous
        ([300, 1323], None),  # pieces missing
    ],
)
def test_token_id_map_from_probe(ids, expected):
    assert TokenIdMap.from_probe(ids) == expected
