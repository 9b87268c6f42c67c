"""Build a tiny random PaliGemma 2 checkpoint offline, for tests and demos.

The checkpoint has the real architecture (SigLIP vision tower, projector,
Gemma 2 decoder), a real-shaped processor and a PaliGemma-like tokenizer:
a small BPE with byte fallback, then ``<loc0000>``..``<loc1023>`` and
``<seg000>``..``<seg127>`` as plain added tokens and ``<image>`` as a special
token, in that order (as in the real tokenizer). Weights are random, so the
text it generates is noise, but every loading and generation code path is real.

    python -m scripts.make_tiny_model OUT_DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_SIZE_PX = 32  # square input of the vision tower
PATCH_SIZE_PX = 8  # -> (32 / 8) ** 2 = 16 image tokens
IMAGE_SEQ_LENGTH = (IMAGE_SIZE_PX // PATCH_SIZE_PX) ** 2
BPE_PIECES = 400  # learnt pieces on top of specials and the 256 byte pieces
HIDDEN_SIZE = 32
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")  # ids 0..4, as Gemma
LOC_TOKENS = tuple(f"<loc{i:04d}>" for i in range(1024))
SEG_TOKENS = tuple(f"<seg{i:03d}>" for i in range(128))
IMAGE_TOKEN = "<image>"

_CORPUS = """\
detect the dog and the cat ; segment the left wheel of the car
caption en a photo of a person riding a bike on a street
describe en a red car parked next to a green tree in the city
answer en what is written on the sign ? the sign says stop
ocr the quick brown fox jumps over the lazy dog
segment shoe ; detect person ; detect bicycle ; segment cow in the field
there are two people and three cars on the road near the house
a black and white photo of a cat sitting on a wooden table
the man is holding a cup of coffee while reading a book
find all the cars and people in the picture and draw boxes
question en where is the cat ? the cat is on the sofa
a small boat on the water under a blue sky with white clouds
children are playing football in the park behind the school building
the kitchen has a white refrigerator, an oven and a window over the sink
a yellow taxi waits at the traffic light while pedestrians cross the road
answer en how many birds are flying ? there are four birds flying south
detect traffic light ; segment umbrella ; detect horse ; segment giraffe
the airplane is landing at the airport during a cloudy afternoon
caption es un perro marrón corriendo en la playa
caption de eine katze schläft auf dem warmen fensterbrett
a plate with pizza, salad and a glass of orange juice on the counter
describe en an old bridge crosses the river between green mountains
"""


def _train_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab (specials, <0x00>..<0xFF>, learnt pieces) and merges of a tiny BPE."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    # Learn pieces inside words only ("▁the"); GemmaTokenizer applies no split.
    tokenizer.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(
        vocab_size=len(SPECIAL_TOKENS) + len(byte_tokens) + BPE_PIECES,
        special_tokens=[*SPECIAL_TOKENS, *byte_tokens],
        show_progress=False,
    )
    lines = [" " + line for line in _CORPUS.splitlines() if line.strip()]
    tokenizer.train_from_iterator(lines, trainer=trainer)
    state = tokenizer.to_str()
    import json

    model = json.loads(state)["model"]
    merges = [
        tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
        for m in model["merges"]
    ]
    return dict(model["vocab"]), merges  # type: ignore[return-value]


def build_tokenizer():
    """A GemmaTokenizer with the PaliGemma token layout (loc, seg, then image)."""
    from transformers import AddedToken, GemmaTokenizer

    vocab, merges = _train_bpe()
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges)
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in LOC_TOKENS])
    tokenizer.add_tokens([AddedToken(t, normalized=False) for t in SEG_TOKENS])
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(IMAGE_TOKEN, normalized=False)]}
    )
    return tokenizer


def build_tiny_model(
    out_dir: str | Path, seed: int = 0, image_size_px: int = IMAGE_SIZE_PX
) -> Path:
    """Write a tiny random PaliGemma 2 checkpoint + processor into ``out_dir``.

    Deterministic for a given ``seed`` (same weights and tokenizer files).
    The result loads with ``AutoProcessor.from_pretrained(out_dir)`` and
    ``PaliGemmaForConditionalGeneration.from_pretrained(out_dir)``; images are
    resized to 32x32 px, which gives 16 image tokens (``image_size_px``, a
    multiple of 8, changes that: 64 px gives 64, as 448 vs 224 does for the real
    mix checkpoints). Returns ``out_dir``.
    """
    import torch
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

    if image_size_px < PATCH_SIZE_PX or image_size_px % PATCH_SIZE_PX:
        raise ValueError(
            f"image_size_px must be a multiple of {PATCH_SIZE_PX}, got {image_size_px}"
        )
    image_seq_length = (image_size_px // PATCH_SIZE_PX) ** 2
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vocab_size = -(-len(tokenizer) // 64) * 64  # padded like the real vocab

    image_processor = SiglipImageProcessorPil(
        size={"height": image_size_px, "width": image_size_px},
        image_seq_length=image_seq_length,
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)

    text_config = Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=64,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision_config = SiglipVisionConfig(
        hidden_size=HIDDEN_SIZE,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size_px,
        patch_size=PATCH_SIZE_PX,
        vision_use_head=False,
    )
    config = PaliGemmaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        vocab_size=vocab_size,
        projection_dim=HIDDEN_SIZE,
        hidden_size=HIDDEN_SIZE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(config).to(torch.float32).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    logger.info(
        "tiny PaliGemma 2 written to %s (vocab %d, tokenizer %d, image tokens %d)",
        out,
        vocab_size,
        len(tokenizer),
        image_seq_length,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="directory to write into")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--image-size", type=int, default=IMAGE_SIZE_PX, help="input side, px"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_tiny_model(args.out_dir, seed=args.seed, image_size_px=args.image_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
