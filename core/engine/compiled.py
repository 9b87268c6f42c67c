"""Decoding with a static KV cache and a ``torch.compile``d decode step.

``StaticDecoder.decode`` replaces ``model.generate`` for the local engine when
COMPILE is on (default on CUDA): the prefix (image + prompt) runs once, eager,
with the bidirectional prefix-LM mask (``token_type_ids``, the transformers
masking utils, never FlashAttention 2); then each new token is one call of a
compiled step on a preallocated cache, so decoding costs a few kernel
launches per token instead of ~2,000 from Python. Batches are left padded.

Shapes are bucketed so that a warm-up at load compiles every shape a request
will see: rows pad up to a power of two (at most ``batch_max``), the cache
holds ``image tokens + TEXT_BUDGETS[i]`` tokens. A request whose prompt plus
answer needs more than the largest budget runs the same loop eager (a longer
cache, no compile), so no user pays a compile. torch and transformers are
imported inside functions, as in ``core.engine.local``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from core.engine.static_cache import Row, left_padded, new_cache, pooled, prefill_view

logger = logging.getLogger(__name__)

TEXT_BUDGETS = (128, 256)  # prompt + answer tokens a compiled cache holds
WARM_STEPS = 4  # decode steps per warmed shape: compile, then CUDA-graph record
_SHAPES = 0  # compiled decode shapes in this process (dynamo's recompile limit)


def batch_bucket(rows: int, batch_max: int) -> int:
    """Rows a batch of ``rows`` is padded to: the next power of two, <= batch_max."""
    if not 1 <= rows <= batch_max:
        raise ValueError(f"rows must be in 1..{batch_max}, got {rows}")
    bucket = 1
    while bucket < rows:
        bucket *= 2
    return min(bucket, batch_max)


class StaticDecoder:
    """Greedy or sampled decoding on a static cache, the step compiled or eager.

    ``backend`` is a torch.compile backend ("inductor" on CUDA; tests on CPU
    may use another), ``mode`` its mode ("reduce-overhead": CUDA graphs).
    ``compile_step`` False runs the same loop eager (the reference in tests).
    One decode at a time (an internal lock; the engine also holds its run
    lock). The kept caches (one per warmed shape) stay allocated: on the 3B
    model ~106 KB per token and row in bf16, ~4 GB for BATCH_MAX 8 at 448 px.
    """

    def __init__(
        self,
        model: Any,
        *,
        image_tokens: int,
        batch_max: int,
        pad_token_id: int,
        compile_step: bool = True,
        backend: str = "inductor",
        mode: str | None = "reduce-overhead",
    ) -> None:
        import torch

        self.model = model
        self.image_tokens = image_tokens
        self.batch_max = batch_max
        self.pad_token_id = pad_token_id
        self.compiled = compile_step
        self._caches: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()
        self.warmed: set[tuple[int, int]] = set()
        step = self._step
        if compile_step:
            # one graph per (rows, cache length) bucket, all warmed at load;
            # every decoder of the process shares _step's code, hence its limit
            global _SHAPES
            _SHAPES += len(TEXT_BUDGETS) * max(1, batch_max.bit_length())
            torch._dynamo.config.recompile_limit = max(
                torch._dynamo.config.recompile_limit, _SHAPES + 8
            )
            lazy_getattr_raises_attribute_error()
            step = torch.compile(self._step, backend=backend, mode=mode, dynamic=False)
        self._compiled_step = step

    def cache_len(self, text_tokens: int) -> tuple[int, bool]:
        """(cache length, compiled?) for a request of ``text_tokens`` prompt +
        answer tokens: the smallest warmed budget that holds it, else exact."""
        for budget in TEXT_BUDGETS:
            if text_tokens <= budget:
                return self.image_tokens + budget, self.compiled
        return self.image_tokens + text_tokens, False

    def warm_up(self, row: Row, features: Any) -> None:
        """Compile (or record) every (rows, budget) shape once: ``row`` (a real
        prompt with its image tokens) repeated, with features [1, tokens, hidden]."""
        rows = 1
        while True:
            for budget in TEXT_BUDGETS:
                self.decode(
                    [row] * rows,
                    features.expand(rows, *features.shape[1:]),
                    max_new_tokens=WARM_STEPS,
                    eos_ids=set(),  # run every warm-up step
                    text_budget=budget,
                )
                logger.info("decode step warmed: %d rows, cache %d", rows, budget)
            if rows >= self.batch_max:
                return
            rows = min(rows * 2, self.batch_max)

    def _cache(self, rows: int, length: int) -> Any:
        """The kept cache for a warmed shape (reset), or a new one-off cache."""
        if length - self.image_tokens not in TEXT_BUDGETS:
            return new_cache(self.model.config, length)
        cache = self._caches.get((rows, length))
        if cache is None:
            cache = new_cache(self.model.config, length)
            self._caches[(rows, length)] = cache
        else:
            cache.reset()
        return cache

    def _step(self, input_ids, position_ids, attention_mask, cache):
        out = self.model(
            input_ids=input_ids,
            position_ids=position_ids,
            attention_mask=attention_mask,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    def decode(
        self,
        rows: Sequence[Row],
        features: Any,
        *,
        max_new_tokens: int,
        eos_ids: set[int],
        pick: Callable[[Any], Any] | None = None,
        on_token: Callable[[int, int], None] | None = None,
        text_budget: int | None = None,
        cancelled: Callable[[int], bool] | None = None,
    ) -> list[list[int]]:
        """New token ids per row (each ends at its first EOS, inclusive).

        ``features``: projected image features [len(rows), image_tokens, hidden].
        ``pick``: logits [B, vocab] float32 -> next ids [B]; default argmax.
        ``on_token(row, token_id)``: called for every new token of a live row.
        ``text_budget``: the cache's text budget (warm-up); default: the
        smallest that holds prompt + ``max_new_tokens``.
        ``cancelled(row)``: True once that row's caller gave up; it then stops
        (within one token) and keeps the tokens it has.
        """
        import torch

        n = len(rows)
        bucket = batch_bucket(n, self.batch_max)
        rows = list(rows) + [rows[-1]] * (bucket - n)  # dummy rows, dropped
        features = torch.cat([features, features[-1:].expand(bucket - n, -1, -1)])
        width = max(len(row.input_ids) for row in rows)
        text_tokens = width - self.image_tokens + max_new_tokens
        length, compiled = self.cache_len(max(text_tokens, text_budget or 0))
        inputs = left_padded(rows, width, length, self.pad_token_id)
        ids, types, mask, positions = (t.to(self.model.device) for t in inputs)
        with self._lock:
            cache = self._cache(bucket, length)
            out = self.model(
                input_ids=ids,
                attention_mask=mask[:, :width],
                token_type_ids=types,
                position_ids=positions,
                mm_encoder_outputs={"image": pooled(features)},
                past_key_values=prefill_view(cache),
                use_cache=True,
                logits_to_keep=1,
            )
            result = self._generate(
                out.logits[:, -1, :].float(),
                positions[:, -1:],
                mask,
                cache,
                step=self._compiled_step if compiled else self._step,
                rows=n,
                max_new_tokens=max_new_tokens,
                eos_ids=eos_ids,
                pick=pick or (lambda logits: logits.argmax(-1)),
                on_token=on_token,
                cancelled=cancelled,
            )
            self.warmed.add((bucket, length))
        return result

    def _generate(
        self,
        logits: Any,
        position: Any,
        mask: Any,
        cache: Any,
        *,
        step: Callable[..., Any],
        rows: int,
        max_new_tokens: int,
        eos_ids: set[int],
        pick: Callable[[Any], Any],
        on_token: Callable[[int, int], None] | None,
        cancelled: Callable[[int], bool] | None,
    ) -> list[list[int]]:
        """The decode loop after the prefill: ``logits`` [B, vocab] of the last
        prompt token, ``position`` [B, 1] its position ids; tokens of the first
        ``rows`` rows (the rest are padding rows, run and dropped)."""
        result: list[list[int]] = [[] for _ in range(rows)]
        live = [True] * rows
        for step_index in range(max_new_tokens):
            next_ids = pick(logits)
            chosen = next_ids.tolist()
            for b in range(rows):
                if live[b]:
                    result[b].append(chosen[b])
                    if on_token is not None:
                        on_token(b, chosen[b])
                    live[b] = chosen[b] not in eos_ids
                if live[b] and cancelled is not None and cancelled(b):
                    live[b] = False
            if not any(live) or step_index == max_new_tokens - 1:
                break
            position = position + 1
            logits = step(next_ids[:, None], position, mask, cache)
        return result


def lazy_getattr_raises_attribute_error(names: tuple[str, ...] = ("chainlit",)) -> None:
    """Make the PEP 562 ``__getattr__`` of these modules raise AttributeError.

    chainlit's lazy ``__getattr__`` raises KeyError for a name it does not
    know; inductor's cache-key pickler probes module attributes and then fails
    the whole compile ("KeyError: 'torch'"), so in the app (chainlit loaded)
    every compile fell back to eager. Python expects AttributeError there.
    """
    for name in names:
        module = sys.modules.get(name)
        getter = getattr(module, "__dict__", {}).get("__getattr__")
        if getter is None or getattr(getter, "raises_attribute_error", False):
            continue

        def safe(attribute: str, _getter=getter):
            try:
                return _getter(attribute)
            except KeyError:
                raise AttributeError(attribute) from None

        safe.raises_attribute_error = True
        module.__getattr__ = safe
