"""PaliGemma 2 + processor in this process (the local backend).

With core.engine.quantize, the only module that imports torch/transformers; it
does so lazily inside
methods so that importing it (and starting the app) stays fast. One model run
at a time: ``generate`` holds a process-wide lock, callers run it off the event
loop. The vision tower's features are cached per image (bounded LRU), so a
second prompt on the same image only runs the language model.

With BATCH_MAX > 1 (default 8 on CUDA) or COMPILE on (default on CUDA),
answers come from ``core.engine.compiled.StaticDecoder`` (static KV cache,
compiled decode step) and concurrent ``generate`` calls are grouped by
``core.engine.batcher.MicroBatcher`` into left-padded batches. Otherwise
(the CPU default) ``model.generate`` answers one request at a time.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from core.config import Settings, default_model_id, resolve_device
from core.engine.base import Engine, GenerationParams
from core.engine.batcher import MicroBatcher
from core.engine.decoding import cancel_criteria, text_streamer
from core.engine.hub import hub_error_message, is_local_path
from core.errors import ModelUnavailableError
from core.images import image_digest
from core.tokens import IMAGE_TOKEN
from core.types import GeneratedText

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Request:
    """One ``generate`` call waiting for a batch."""

    image: Image.Image
    prompt: str
    params: GenerationParams
    on_text: Callable[[str], None] | None
    cancel: threading.Event | None = None  # set: stop this answer


class ModelManager(Engine):
    """PaliGemma 2 in this process (transformers); one model run at a time.

    ``feature_cache_size``: how many images' vision features to keep (LRU);
    0 disables the cache.
    """

    def __init__(self, settings: Settings, feature_cache_size: int = 8) -> None:
        if feature_cache_size < 0:
            raise ValueError(
                f"feature_cache_size must be >= 0, got {feature_cache_size}"
            )
        super().__init__(settings)
        self._run_lock = threading.Lock()  # one model run at a time
        self.model: Any = None
        self.processor: Any = None
        self._features: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._feature_cache_size = feature_cache_size
        self._decoder: Any = None  # StaticDecoder when batching or compiling
        self._batcher: MicroBatcher | None = None

    def _model_loaded(self) -> bool:
        return self.model is not None

    def _load_model(self) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoProcessor,
            PaliGemmaForConditionalGeneration,
        )

        device = resolve_device(self.settings.device)
        dtype = self.settings.dtype
        if dtype == "auto":
            dtype = "bfloat16" if device == "cuda" else "float32"
        model_id = self.settings.model_id or default_model_id(device)
        self._set(device=device, dtype=dtype, model_id=model_id)
        logger.info("loading %s on %s as %s", model_id, device, dtype)
        source: str | Path = model_id
        if is_local_path(model_id):
            source = Path(model_id).expanduser()
            if not source.is_dir():
                raise ModelUnavailableError(
                    f"MODEL_ID points to {source}, which is not a directory: set "
                    "MODEL_ID to a folder holding a PaliGemma checkpoint, or to a "
                    "Hugging Face model id such as google/paligemma2-3b-mix-224."
                )
            if not (source / "config.json").is_file():
                raise ModelUnavailableError(
                    f"MODEL_ID points to {source}, which is not a model checkpoint "
                    "(no config.json): point MODEL_ID at the folder holding "
                    "config.json, *.safetensors and the processor files."
                )
        token = self.settings.hf_token
        try:
            # A library boundary: every failure becomes one actionable error.
            config = AutoConfig.from_pretrained(source, token=token)
            if config.model_type != "paligemma":
                raise ModelUnavailableError(
                    f"MODEL_ID {model_id} is a {config.model_type!r} model, expected "
                    "a PaliGemma checkpoint (model_type 'paligemma')."
                )
            processor = AutoProcessor.from_pretrained(source, token=token)
            from core.engine.quantize import quantization_load_kwargs, quantize_model

            quantization = self.settings.quantization
            load_kwargs = quantization_load_kwargs(quantization, device)  # CUDA: bnb
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                source, token=token, dtype=getattr(torch, dtype), **load_kwargs
            )
            if not load_kwargs:  # bitsandbytes placed it; .to() would fail there
                model = model.to(device)
            model = model.eval()
            model = quantize_model(model, quantization, device)  # CPU: int8
            logger.info("%s loaded, quantization %s", model_id, quantization)
        except ModelUnavailableError:
            raise
        except Exception as exc:
            raise ModelUnavailableError(hub_error_message(model_id, exc)) from exc
        self.processor, self.model = processor, model
        self._setup_decoder(device)

    @property
    def batch_max(self) -> int:
        """The micro-batcher's batch size once loaded (1 without one)."""
        return self._batcher.batch_max if self._batcher is not None else 1

    def _setup_decoder(self, device: str) -> None:
        """A StaticDecoder + MicroBatcher when BATCH_MAX > 1 or COMPILE is on."""
        from core.engine.compiled import StaticDecoder
        from core.engine.decoding import compile_wanted

        batch_max = self.settings.batch_size(device)
        compiled = compile_wanted(self.settings, device)
        if batch_max == 1 and not compiled:
            return
        tokenizer = self.processor.tokenizer
        self._decoder = StaticDecoder(
            self.model,
            image_tokens=self.processor.image_seq_length,
            batch_max=batch_max,
            pad_token_id=tokenizer.pad_token_id,
            compile_step=compiled,
            backend=self.settings.compile_backend,
            mode="reduce-overhead" if device == "cuda" else None,  # CUDA graphs
        )
        self._batcher = MicroBatcher(self._run_batch, batch_max)
        logger.info("decoding: batches of up to %d, compiled %s", batch_max, compiled)

    def _warm_up(self) -> None:
        image = Image.new("RGB", (32, 32), (128, 128, 128))
        self._run(image, "caption en", {"max_new_tokens": 2}, use_cache=False)
        if self._decoder is not None and self._decoder.compiled:
            try:
                self._warm_decoder(image)
            except Exception as exc:  # a torch.compile failure (library boundary)
                if self.settings.compile == "on":
                    raise
                logger.warning("torch.compile failed, decoding eager: %r", exc)
                self._decoder.compiled = False

    def _warm_decoder(self, image: Image.Image) -> None:
        """Compile every decode shape now, so that no user pays a compile."""
        import torch

        with self._run_lock, torch.inference_mode():
            row, features = self._encode(image, "caption en", "", use_cache=False)
            self._decoder.warm_up(row, features)

    def _encode(self, image: Image.Image, prompt: str, digest: str, use_cache: bool):
        """(Row of prompt ids, image features [1, tokens, hidden]) for a batch."""
        from core.engine.compiled import Row

        inputs = self.processor(
            images=image, text=IMAGE_TOKEN + prompt, return_tensors="pt"
        )
        pixels = inputs["pixel_values"].to(self.model.device)
        features = self._image_features(digest, pixels, use_cache).pooler_output
        ids, types = inputs["input_ids"][0], inputs["token_type_ids"][0]
        return Row(ids.tolist(), types.tolist()), features

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()

    def _generate(
        self,
        image: Image.Image,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None = None,
    ) -> GeneratedText:
        decoding: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": params.do_sample,
            **params.sampling(),
        }
        if self._batcher is not None:
            request = _Request(image, prompt, params, on_text, cancel)
            key = (params.do_sample, tuple(sorted(params.sampling().items())))
            return self._batcher.submit(request, key=key)
        if on_text is not None:
            decoding["streamer"] = text_streamer(self.processor.tokenizer, on_text)
        if cancel is not None:
            decoding["stopping_criteria"] = cancel_criteria(cancel)
        return self._run(image, prompt, decoding, use_cache=True)

    def _run_batch(self, requests: Sequence[_Request]) -> list[GeneratedText]:
        """One left-padded StaticDecoder run for ``requests`` (same sampling)."""
        import torch

        from core.engine.decoding import RowStreams, sampler

        budgets = [request.params.max_new_tokens for request in requests]
        callbacks = [request.on_text for request in requests]
        stream = RowStreams(self.processor.tokenizer, callbacks, budgets)
        use_cache = self._feature_cache_size > 0
        digests = [image_digest(r.image) if use_cache else "" for r in requests]
        with self._run_lock, torch.inference_mode():  # digests outside the lock
            encoded = [
                self._encode(request.image, request.prompt, digest, use_cache)
                for request, digest in zip(requests, digests, strict=True)
            ]
            rows = [row for row, _ in encoded]
            features = [image_features for _, image_features in encoded]
            new_ids = self._decoder.decode(
                rows,
                torch.cat(features),
                max_new_tokens=max(budgets),
                eos_ids=self._eos_ids(),
                pick=sampler(requests[0].params, self.model.generation_config),
                on_token=stream.put,
                cancelled=lambda row: (
                    bool(requests[row].cancel) and requests[row].cancel.is_set()
                ),
            )
        stream.end()
        return [
            self._answer(ids[:budget], budget)
            for ids, budget in zip(new_ids, budgets, strict=True)
        ]

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, list) else [eos])

    def _answer(self, new_ids: list[int], max_new_tokens: int) -> GeneratedText:
        """New token ids -> the decoded answer, truncated when no EOS came."""
        ended = any(token in self._eos_ids() for token in new_ids)
        text = self.processor.decode(new_ids, skip_special_tokens=True).strip()
        return GeneratedText(
            text,
            truncated=not ended and len(new_ids) >= max_new_tokens,
            num_tokens=len(new_ids),
        )

    def _run(
        self, image: Image.Image, prompt: str, decoding: dict[str, Any], use_cache: bool
    ) -> GeneratedText:
        import torch

        use_cache = use_cache and self._feature_cache_size > 0
        digest = image_digest(image) if use_cache else ""  # outside the lock
        with self._run_lock, torch.inference_mode():
            inputs = self.processor(
                images=image, text=IMAGE_TOKEN + prompt, return_tensors="pt"
            )
            inputs = inputs.to(self.model.device)
            features = self._image_features(digest, inputs["pixel_values"], use_cache)
            output = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                token_type_ids=inputs["token_type_ids"],
                mm_encoder_outputs={"image": features},
                **decoding,
            )
        new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
        return self._answer(new_ids, decoding["max_new_tokens"])

    def _image_features(self, digest: str, pixel_values: Any, use_cache: bool):
        """The projected vision features of the image whose ``image_digest`` is
        ``digest``, from the LRU when there.

        Returns a BaseModelOutputWithPooling whose ``pooler_output`` is
        [1, image_seq_length, hidden] in the model dtype, as
        ``generate(mm_encoder_outputs={"image": ...})`` takes it.
        """
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pixel_values = pixel_values.to(self.model.dtype)
        if not use_cache or self._feature_cache_size == 0:
            return self.model.get_image_features(pixel_values, return_dict=True)
        key = (digest, self._model_id)
        cached = self._features.get(key)
        if cached is not None:
            self._features.move_to_end(key)
            return cached
        computed = self.model.get_image_features(pixel_values, return_dict=True)
        features = BaseModelOutputWithPooling(pooler_output=computed.pooler_output)
        self._features[key] = features  # only the projected features are kept
        while len(self._features) > self._feature_cache_size:
            self._features.popitem(last=False)
        return features
