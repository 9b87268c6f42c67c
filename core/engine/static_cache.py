"""The static KV cache of ``core.engine.compiled`` and the prefill's inputs.

torch and transformers are imported inside functions, as in ``core.engine.local``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PAD_POSITION = 1  # position id of left padding (masked out; any valid value)


@dataclass(frozen=True)
class Row:
    """One request of a batch: its prompt ids (no padding) and token type ids."""

    input_ids: Sequence[int]
    token_type_ids: Sequence[int]


def new_cache(config: Any, max_cache_len: int) -> Any:
    """A static KV cache of ``max_cache_len`` tokens for every layer.

    Every layer is a plain StaticLayer: transformers' sliding-window layer
    keeps a Python int that changes each token, so a compiled step would
    recompile per token; the window is still applied by the sliding mask.
    """
    from transformers.cache_utils import Cache, StaticLayer

    layers = config.get_text_config().num_hidden_layers
    return Cache(
        layers=[StaticLayer(max_cache_len=max_cache_len) for _ in range(layers)]
    )


def prefill_view(cache: Any) -> Any:
    """``cache``'s layers behind a cache that reports itself uninitialized.

    PaliGemma applies the bidirectional prefix mask only while the cache is
    not initialized; a reused cache (stable addresses for CUDA graphs) always
    is, so the prefill writes through this view instead.
    """
    from transformers.cache_utils import Cache

    class PrefillView(Cache):
        @property
        def is_initialized(self) -> bool:
            return False

    return PrefillView(layers=cache.layers)


def left_padded(
    rows: Sequence[Row], width: int, length: int, pad_token_id: int
) -> tuple[Any, Any, Any, Any]:
    """(input ids, token type ids, attention mask, position ids) of ``rows``
    left padded to ``width``: all [B, width] but the mask, [B, length] over the
    whole cache, 1 from each row's prompt on (every later answer slot too)."""
    import torch

    bucket = len(rows)
    ids = torch.full((bucket, width), pad_token_id, dtype=torch.long)
    types = torch.zeros((bucket, width), dtype=torch.long)
    mask = torch.zeros((bucket, length), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row.input_ids) :] = torch.tensor(row.input_ids)
        types[b, width - len(row.token_type_ids) :] = torch.tensor(row.token_type_ids)
        mask[b, width - len(row.input_ids) :] = 1  # prompt and all later slots
    positions = (mask[:, :width].cumsum(-1)).clamp(min=PAD_POSITION)  # 1-based
    return ids, types, mask, positions


def pooled(features: Any) -> Any:
    """Projected image features as the encoder output PaliGemma takes."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(pooler_output=features)
