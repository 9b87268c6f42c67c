"""Building blocks of the real-size benchmarks: a random PaliGemma 2 3B, timers.

``build_checkpoint`` writes google/paligemma2-3b-mix-{224,448}'s architecture
with random weights (no download); ``ForwardTimer`` splits a ``generate`` call
into vision tower, prefill and per-token decode without touching the model code.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

# A 2-layer, 64-wide decoder: with it a turn costs about what the vision tower does.
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "query_pre_attn_scalar": 32,
}
GEMMA2_2B_TEXT = {
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
}
VOCAB_SIZE = 257216  # as published: 256000 text + 1024 loc + 128 seg + 64 spare


def build_config(
    image_size: int, image_token_id: int, tokenizer: Any, tiny_text: bool = False
) -> Any:
    """PaliGemmaConfig of google/paligemma2-3b-mix-{224,448} (checked against
    the published config.json: Gemma 2 2B text model, SigLIP So400m/14).

    ``tiny_text``: the same SigLIP tower with a 2-layer, 64-wide decoder.
    """
    from transformers import Gemma2Config, PaliGemmaConfig, SiglipVisionConfig

    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    text_size = TINY_TEXT if tiny_text else GEMMA2_2B_TEXT
    text = Gemma2Config(
        vocab_size=VOCAB_SIZE,
        **text_size,
        sliding_window=4096,
        final_logit_softcapping=30.0,
        attn_logit_softcapping=50.0,
        hidden_activation="gelu_pytorch_tanh",
        **ids,
    )
    vision = SiglipVisionConfig(
        hidden_size=1152,
        intermediate_size=4304,
        num_hidden_layers=27,
        num_attention_heads=16,
        patch_size=14,
        image_size=image_size,
        vision_use_head=False,
    )
    return PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id,
        vocab_size=VOCAB_SIZE,
        projection_dim=text_size["hidden_size"],
        hidden_size=text_size["hidden_size"],
        **ids,
    )


def build_checkpoint(
    out: Path, image_size: int, seed: int = 0, tiny_text: bool = False
) -> dict[str, float]:
    """Write a random bf16 PaliGemma 2 3B + processor to ``out``; returns timings.

    ``tiny_text``: keep the real vision tower, shrink the decoder (build_config).
    Weights are allocated uninitialised (transformers' no_init_weights), then
    filled with N(0, 0.02): seconds instead of minutes for 3B parameters.
    """
    import torch
    from transformers import (
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )
    from transformers.initialization import no_init_weights

    from scripts.make_tiny_model import IMAGE_TOKEN, build_tokenizer

    started = time.perf_counter()
    tokenizer = build_tokenizer()
    image_processor = SiglipImageProcessorPil(
        size={"height": image_size, "width": image_size},
        image_seq_length=(image_size // 14) ** 2,
    )
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = build_config(image_size, image_token_id, tokenizer, tiny_text)
    torch.manual_seed(seed)
    with no_init_weights():  # bf16 from the start: never 12 GB of fp32 pages
        model = PaliGemmaForConditionalGeneration._from_config(
            config, dtype=torch.bfloat16
        ).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    model.tie_weights()  # no_init_weights skipped it: lm_head is the embedding
    if model.lm_head.weight is not model.get_input_embeddings().weight:
        raise RuntimeError("lm_head is not tied to the input embedding")
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    built = time.perf_counter()
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    parameters = sum(p.numel() for p in model.parameters())
    del model
    gc.collect()
    return {
        "build_s": round(built - started, 1),
        "save_s": round(time.perf_counter() - built, 1),
        "parameters": parameters,
    }


class ForwardTimer:
    """Wall time of each top-level model forward and each vision-tower call.

    In ``generate`` the first forward is the prefill (it yields the first
    token), every later one decodes one token. ``tokens`` holds each forward's
    greedy pick (argmax of the last logits), to compare runs token by token.
    """

    def __init__(self, model: Any) -> None:
        self.forwards: list[tuple[float, float]] = []
        self.vision: list[tuple[float, float]] = []
        self.tokens: list[int] = []
        self.prefill_logits: Any = None  # float32 [vocab] of the first forward
        vision = model.model.vision_tower
        self._handles = [
            model.register_forward_pre_hook(self._start(self.forwards)),
            model.register_forward_hook(self._end(self.forwards, self.tokens)),
            vision.register_forward_pre_hook(self._start(self.vision)),
            vision.register_forward_hook(self._end(self.vision, None)),
        ]

    @staticmethod
    def _start(spans):
        def hook(*_):
            spans.append((time.perf_counter(), 0.0))

        return hook

    def _end(self, spans, tokens):
        def hook(_module, _args, output):
            spans[-1] = (spans[-1][0], time.perf_counter())
            if tokens is not None:
                last = output.logits[0, -1]
                tokens.append(int(last.argmax()))
                if self.prefill_logits is None:
                    self.prefill_logits = last.float().clone()

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def split(self, started: float) -> dict[str, Any]:
        """Seconds: vision tower, prefill (without vision), decode, first token."""
        vision_s = sum(end - start for start, end in self.vision)
        first_start, first_end = self.forwards[0]
        inside = sum(e - s for s, e in self.vision if first_start <= s <= first_end)
        decode = [end - start for start, end in self.forwards[1:]]
        return {
            "vision_s": vision_s,
            "prefill_s": first_end - first_start - inside,
            "decode_s": sum(decode),
            "decode_steps": len(decode),
            "per_token_s": sum(decode) / len(decode) if decode else 0.0,
            "per_token_min_s": min(decode, default=0.0),
            "ttft_s": first_end - started,
        }


def paligemma_answer(prompt: str, seed: int = 0) -> str:
    """A PaliGemma-style answer to ``prompt``: one object per target."""
    rng = np.random.default_rng(seed)
    task, _, targets = prompt.partition(" ")
    objects = []
    for label in (t.strip() for t in targets.split(";")):
        y1, x1 = rng.integers(0, 500, size=2)
        locs = "".join(f"<loc{v:04d}>" for v in (y1, x1, y1 + 400, x1 + 400))
        segs = "".join(f"<seg{v:03d}>" for v in rng.integers(0, 128, size=16))
        objects.append(f"{locs} {segs if task == 'segment' else ''} {label}")
    return " ; ".join(objects)


def rss_gib() -> dict[str, float]:
    """Resident memory of this process, GiB: now (anonymous, and file pages such
    as the mmapped safetensors; after malloc_trim) and the peak (getrusage
    maxrss, both kinds, never trimmed)."""
    _malloc_trim()  # earlier phases' freed heap would count otherwise
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name] = int(value.split()[0])  # KiB
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "anon_gib": round(fields.get("RssAnon", 0) / 2**20, 2),
        "file_gib": round(fields.get("RssFile", 0) / 2**20, 2),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
    }


def _malloc_trim() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: RSS may include freed memory


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def logits_agreement(reference: Any, other: Any) -> dict[str, float]:
    """How far ``other`` float [vocab] logits are from ``reference``."""
    import torch

    top10 = set(reference.topk(10).indices.tolist())
    return {
        "relative_l2_error": float((other - reference).norm() / reference.norm()),
        "cosine": float(torch.nn.functional.cosine_similarity(reference, other, 0)),
        "top1_same": float(reference.argmax() == other.argmax()),
        "top10_overlap": len(top10 & set(other.topk(10).indices.tolist())) / 10,
        "finite": float(torch.isfinite(other).all()),
    }


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value
