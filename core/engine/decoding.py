"""How the local engine decodes: the COMPILE policy, sampling, streaming.

Small helpers around ``core.engine.compiled.StaticDecoder``, kept apart so
that the decoder module holds only the cache and the decode loop.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from typing import Any

from core.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

MODES = ("auto", "on", "off")


def check_mode(mode: str) -> str:
    """``mode`` if it is one of MODES; raises ValueError otherwise."""
    if mode not in MODES:
        raise ValueError(f"COMPILE must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def compile_wanted(settings: Any, device: str) -> bool:
    """Whether to compile the decode step: COMPILE=on, or auto on CUDA without
    bitsandbytes (its int8/int4 layers do not compile) and with the C compiler
    inductor needs (Triton builds a C launcher; on CPU it emits C++).

    Raises ModelUnavailableError for COMPILE=on with inductor and no compiler.
    """
    check_mode(settings.compile)
    if settings.compile == "off":
        return False
    if settings.compile == "auto" and (
        device != "cuda" or settings.quantization != "none"
    ):
        return False
    if settings.compile_backend == "inductor" and not _has_compiler(device):
        needed = "gcc" if device == "cuda" else "g++"
        if settings.compile == "on":
            raise ModelUnavailableError(
                f"COMPILE=on needs a C compiler for torch.compile's inductor on "
                f"{device}; {needed} was not found: install it (apt-get install "
                f"{needed}) or set COMPILE=off."
            )
        logger.warning("no %s found: decoding without torch.compile", needed)
        return False
    return True


def _has_compiler(device: str) -> bool:
    names = ("gcc", "cc", "clang") if device == "cuda" else ("g++", "c++", "clang++")
    return any(shutil.which(name) for name in names)


def sampler(params: Any, generation_config: Any) -> Callable[[Any], Any] | None:
    """logits [B, vocab] -> next ids [B] for GenerationParams ``params``.

    None (argmax) when greedy; otherwise temperature, top-k and top-p as
    ``model.generate`` applies them (unset values from ``generation_config``).
    """
    if not params.do_sample:
        return None
    import torch
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    def setting(name: str) -> Any:
        value = getattr(params, name)
        return getattr(generation_config, name, None) if value is None else value

    warpers = LogitsProcessorList()
    temperature, top_k, top_p = (
        setting("temperature"),
        setting("top_k"),
        setting("top_p"),
    )
    if temperature is not None and temperature not in (0.0, 1.0):
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))

    def pick(logits: Any) -> Any:
        scores = warpers(None, logits)
        return torch.multinomial(scores.softmax(-1), num_samples=1)[:, 0]

    return pick


def text_streamer(
    tokenizer: Any, on_text: Callable[[str], None], skip_prompt: bool = True
) -> Any:
    """A transformers TextStreamer that hands finished words to ``on_text``.

    ``skip_prompt``: ignore the first ``put`` (``model.generate`` passes the
    prompt there); False when only new tokens are put.
    """
    from transformers import TextStreamer

    class CallbackStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return CallbackStreamer(
        tokenizer, skip_prompt=skip_prompt, skip_special_tokens=True
    )


class RowStreams:
    """Streams each row of a batch to its own ``on_text`` (None: not streamed),
    new tokens only and at most ``budgets[row]`` of them."""

    def __init__(
        self,
        tokenizer: Any,
        callbacks: list[Callable[[str], None] | None],
        budgets: list[int],
    ) -> None:
        self._streamers = [
            None if on_text is None else text_streamer(tokenizer, on_text, False)
            for on_text in callbacks
        ]
        self._left = list(budgets)

    def put(self, row: int, token_id: int) -> None:
        """``StaticDecoder.decode``'s ``on_token``: one new token of ``row``."""
        import torch

        streamer = self._streamers[row]
        self._left[row] -= 1
        if streamer is not None and self._left[row] >= 0:
            streamer.put(torch.tensor([token_id]))

    def end(self) -> None:
        """Flush what every streamer still holds."""
        for streamer in self._streamers:
            if streamer is not None:
                streamer.end()


def cancel_criteria(cancel: threading.Event) -> Any:
    """A StoppingCriteriaList that ends generation once ``cancel`` is set
    (checked after every new token)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class CancelCriteria(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = cancel.is_set()
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    return StoppingCriteriaList([CancelCriteria()])
