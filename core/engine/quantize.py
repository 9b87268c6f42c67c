"""Weight quantization of PaliGemma's language model: none, int8 or int4.

Two places apply it, both called from ModelManager._load_model:
``quantization_load_kwargs`` gives extra ``from_pretrained`` arguments (CUDA:
bitsandbytes quantizes while loading) and ``quantize_model`` converts an
already loaded model (CPU int8: dynamic int8 ``nn.Linear`` from torch.ao).

On CPU the Gemma 2 decoder, the ``lm_head`` and the SigLIP vision tower are
quantized (per output channel). The tower (SigLIP So400m, ~0.4B parameters:
~1.6 GB in float32, ~0.4 GB in int8) runs once per new image; its features
stay within a few per cent of float32 (tests/test_quantize.py). The small
projector stays float32. The ``lm_head`` is the largest matmul of a decoding
step (2304 x 257216); int8 makes decoding ~2.3x faster without it and ~5x
with it (bench/README.md), while the input embedding it was tied to stays
float32 (the int8 copy adds ~0.6 GB). With bitsandbytes on CUDA the tower,
projector and ``lm_head`` stay in the model dtype.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import warnings
from typing import Any

from core.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

MODES = ("none", "int8", "int4")
# Submodules of PaliGemmaForConditionalGeneration that bitsandbytes leaves alone.
BNB_SKIP_MODULES = ["vision_tower", "multi_modal_projector", "lm_head"]


def check_mode(mode: str) -> str:
    """``mode`` if it is one of MODES; raises ValueError otherwise."""
    if mode not in MODES:
        expected = ", ".join(MODES)
        raise ValueError(f"QUANTIZATION must be one of {expected}, got {mode!r}")
    return mode


def quantization_load_kwargs(mode: str, device: str) -> dict[str, Any]:
    """Extra ``from_pretrained`` keyword arguments for ``mode`` on ``device``.

    Empty unless ``device`` is "cuda" and ``mode`` is int8/int4, where it is
    ``{"quantization_config": BitsAndBytesConfig(...), "device_map": {"": 0}}``.
    Raises ModelUnavailableError when bitsandbytes or accelerate is missing.
    """
    check_mode(mode)
    if mode == "none" or device != "cuda":
        return {}
    missing = [
        name
        for name in ("bitsandbytes", "accelerate")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ModelUnavailableError(
            f"QUANTIZATION={mode} on CUDA needs the packages {' and '.join(missing)}"
            f" (pip install {' '.join(missing)}), which are not installed; install "
            "them or set QUANTIZATION=none."
        )
    import torch
    from transformers import BitsAndBytesConfig

    if mode == "int8":
        config = BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_skip_modules=BNB_SKIP_MODULES
        )
    else:
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            llm_int8_skip_modules=BNB_SKIP_MODULES,
        )
    return {"quantization_config": config, "device_map": {"": 0}}


def quantize_model(model: Any, mode: str, device: str) -> Any:
    """Quantize a loaded PaliGemmaForConditionalGeneration in place; returns it.

    none: unchanged. CPU int8: every ``nn.Linear`` of the language model, of
    the vision tower and the ``lm_head`` becomes a dynamic int8 Linear
    (per-channel int8 weights, activations quantized per call, int32
    accumulation, float32 out); the model must be float32. CPU int4: raises
    ModelUnavailableError (no CPU int4 path in torch here). CUDA: unchanged,
    since bitsandbytes already quantized it while loading
    (``quantization_load_kwargs``). Raises ValueError for an unknown mode.
    """
    check_mode(mode)
    if mode == "none":
        return model
    if device == "cuda":
        if getattr(model, "quantization_method", None) is None:
            raise ModelUnavailableError(
                f"QUANTIZATION={mode} on CUDA is applied while loading: pass "
                "quantization_load_kwargs(mode, device) to from_pretrained."
            )
        return model
    if mode == "int4":
        raise ModelUnavailableError(
            "QUANTIZATION=int4 needs CUDA (bitsandbytes); on CPU use "
            "QUANTIZATION=int8 or none."
        )
    return _dynamic_int8(model)


def is_int8_dynamic(model: Any) -> bool:
    """True when ``model`` holds torch.ao dynamic int8 Linear layers."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(m, DynamicLinear) for m in model.modules())


def _dynamic_int8(model: Any) -> Any:
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if model.dtype != torch.float32:
        raise ModelUnavailableError(
            f"QUANTIZATION=int8 on CPU needs DTYPE=float32, got {model.dtype}; "
            "set DTYPE=float32 (or auto)."
        )
    towers = (model.model.language_model, model.model.vision_tower)
    linears = sum(
        isinstance(m, torch.nn.Linear) for tower in towers for m in tower.modules()
    )
    with warnings.catch_warnings():
        # torch.ao eager quantization is deprecated in favour of torchao, but it
        # still runs in torch 2.13 and needs no extra package.
        warnings.filterwarnings("ignore", message=r".*deprecated.*")
        for tower in towers:
            quantize_dynamic(
                tower,
                {torch.nn.Linear: per_channel_dynamic_qconfig},
                dtype=torch.qint8,
                inplace=True,
            )
        # the tied embedding keeps its float32 weight; lm_head gets an int8 copy
        quantize_dynamic(
            model,
            {"lm_head": per_channel_dynamic_qconfig},
            dtype=torch.qint8,
            inplace=True,
        )
    # the replaced float32 Linears sit in reference cycles: free them now, not
    # at some later collection (8 GB on the 3B model)
    gc.collect()
    logger.info(
        "int8: %d Linear layers of the language model and vision tower, and the "
        "lm_head, quantized",
        linears,
    )
    return model
