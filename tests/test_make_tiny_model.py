"""The tiny offline PaliGemma 2: deterministic, real token layout, loadable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scripts.make_tiny_model import (
    IMAGE_SEQ_LENGTH,
    LOC_TOKENS,
    SEG_TOKENS,
    build_tiny_model,
    main,
)
from tests.recorded import SHOE_DETECT, WHEELS_SEGMENT


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


def test_same_seed_same_files_other_seed_other_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert _sha256(again / name) == _sha256(tiny_model_dir / name), name
    assert _sha256(other / "model.safetensors") != _sha256(
        tiny_model_dir / "model.safetensors"
    )


def test_checkpoint_is_small(tiny_model_dir: Path) -> None:
    total = sum(f.stat().st_size for f in tiny_model_dir.iterdir())
    assert total < 2_000_000, f"tiny checkpoint is {total} bytes"


def test_loc_seg_image_ids_are_consecutive_in_real_order(processor) -> None:
    tokenizer = processor.tokenizer
    loc = tokenizer.convert_tokens_to_ids(list(LOC_TOKENS))
    seg = tokenizer.convert_tokens_to_ids(list(SEG_TOKENS))
    image = tokenizer.convert_tokens_to_ids("<image>")
    assert loc == list(range(loc[0], loc[0] + 1024))
    assert seg == list(range(loc[0] + 1024, loc[0] + 1024 + 128))
    assert image == seg[-1] + 1
    assert image == len(tokenizer) - 1
    assert "<image>" in tokenizer.all_special_tokens
    assert "<loc0000>" not in tokenizer.all_special_tokens
    assert "<seg000>" not in tokenizer.all_special_tokens


@pytest.mark.parametrize(
    "text",
    [
        SHOE_DETECT,  # case: detect answer
        WHEELS_SEGMENT,  # case: two segmented objects
        "a red car parked on the street",  # case: plain words
        "Zürich 東京 ; ok",  # case: byte fallback for unseen characters
    ],
)
def test_text_survives_decode_with_skip_special_tokens(processor, text: str) -> None:
    tokenizer = processor.tokenizer
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_loc_tokens_are_single_ids(processor) -> None:
    ids = processor.tokenizer(SHOE_DETECT, add_special_tokens=False).input_ids
    loc0 = processor.tokenizer.convert_tokens_to_ids("<loc0000>")
    assert ids[:4] == [loc0 + 51, loc0 + 309, loc0 + 708, loc0 + 646]


def test_image_and_bos_are_skipped_on_decode(processor) -> None:
    tokenizer = processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids("<image>"), tokenizer.bos_token_id]
    ids += tokenizer("<loc0001> cat", add_special_tokens=False).input_ids
    ids += [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<loc0001> cat"


def test_loads_and_generates_with_transformers(tiny_model_dir: Path, processor):
    import torch
    from PIL import Image
    from transformers import PaliGemmaForConditionalGeneration

    model = PaliGemmaForConditionalGeneration.from_pretrained(
        tiny_model_dir, dtype=torch.float32
    )
    tokenizer = processor.tokenizer
    assert type(processor.image_processor).__name__ == "SiglipImageProcessorPil"
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>")
    assert model.config.text_config.vocab_size >= len(tokenizer)
    assert processor.image_seq_length == IMAGE_SEQ_LENGTH
    assert model.config.text_config.num_image_tokens == IMAGE_SEQ_LENGTH
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    inputs = processor(
        images=Image.new("RGB", (40, 30), "red"),
        text="<image>detect cat",
        return_tensors="pt",
    )
    image_id = model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == IMAGE_SEQ_LENGTH
    with torch.inference_mode():
        out = model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            token_type_ids=inputs["token_type_ids"],
            pixel_values=inputs["pixel_values"],
            max_new_tokens=30,
            do_sample=False,
        )
    new_tokens = out.shape[1] - inputs["input_ids"].shape[1]
    assert 1 <= new_tokens <= 30


def test_cli_writes_a_checkpoint(tmp_path: Path) -> None:
    assert main([str(tmp_path / "cli"), "--seed", "3"]) == 0
    written = {f.name for f in (tmp_path / "cli").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= written
    assert {"processor_config.json", "generation_config.json"} <= written
