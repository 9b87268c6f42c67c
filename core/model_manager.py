"""PaliGemma 2 + processor + mask VAE, loaded once per process.

The only module that imports torch/transformers; it does so lazily inside
methods so that importing it (and starting the app) stays fast. One model run
at a time: ``generate`` holds a process-wide lock, callers run it off the event
loop. The vision tower's features are cached per image (bounded LRU), so a
second prompt on the same image only runs the language model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.config import Settings, default_model_id
from core.errors import ModelUnavailableError
from core.hub_errors import hub_error_message, is_local_path
from core.images import image_digest
from core.types import GeneratedText

logger = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"  # goes first in the text; the processor adds <bos> and "\n"


@dataclass(frozen=True)
class ModelStatus:
    """Where loading stands. ``state`` is idle | loading | ready | failed.

    ``error`` is the chat-safe model failure when failed, or the VAE failure
    while ``state`` is ready and ``vae_loaded`` is False; None otherwise.
    """

    state: str
    model_id: str
    device: str
    dtype: str
    model_loaded: bool
    vae_loaded: bool
    error: str | None
    load_seconds: float | None
    backend: str = "local"  # BACKEND: local (in process) | openai (remote engine)


class ModelManager:
    """Loads PaliGemma 2 and the mask VAE once; serialises model runs.

    ``feature_cache_size``: how many images' vision features to keep (LRU);
    0 disables the cache.
    """

    def __init__(self, settings: Settings, feature_cache_size: int = 8) -> None:
        if feature_cache_size < 0:
            raise ValueError(
                f"feature_cache_size must be >= 0, got {feature_cache_size}"
            )
        self.settings = settings
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()  # one model run at a time
        self._state_lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._device = settings.device
        self._dtype = settings.dtype
        self._model_id = settings.model_id or "auto"
        self._error: str | None = None
        self._vae_error: str | None = None
        self._load_seconds: float | None = None
        self.model: Any = None
        self.processor: Any = None
        self.mask_decoder: Any = None
        self._features: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._feature_cache_size = feature_cache_size

    @property
    def status(self) -> ModelStatus:
        with self._state_lock:
            return ModelStatus(
                state=self._state,
                model_id=self._model_id,
                device=self._device,
                dtype=self._dtype,
                model_loaded=self.model is not None,
                vae_loaded=self.mask_decoder is not None,
                error=self._error if self._error else self._vae_error,
                load_seconds=self._load_seconds,
            )

    def _set(self, **values: Any) -> None:
        with self._state_lock:
            for name, value in values.items():
                setattr(self, f"_{name}", value)

    def load(self) -> None:
        """Load processor, model, then the VAE, and warm up; once per process.

        Idempotent and thread-safe: later calls return at once, or re-raise
        the recorded failure. Raises ModelUnavailableError when the model
        cannot be loaded; a VAE failure is only recorded (see decode_masks).
        """
        with self._load_lock:
            if self._state == "ready":
                return
            if self._state == "failed":
                raise ModelUnavailableError(self._error or "the model failed to load")
            started = time.perf_counter()
            try:
                self._set(state="loading")
                self._load_model()
                self._load_vae()
                self._warm_up()
                seconds = time.perf_counter() - started
                self._set(state="ready", load_seconds=seconds)
            except ModelUnavailableError as exc:
                self._set(state="failed", error=exc.message)
                logger.error("model load failed: %s", exc.message)
                raise
            except Exception as exc:  # e.g. out of memory in the warm-up run
                message = (
                    f"The model {self._model_id} loaded but could not run "
                    f"({type(exc).__name__}: {str(exc)[:200]}): check that MODEL_ID "
                    "is a complete PaliGemma checkpoint; if memory ran out, use "
                    "a smaller MODEL_ID."
                )
                self._set(state="failed", error=message)
                logger.exception("model warm-up failed")
                raise ModelUnavailableError(message) from exc
            finally:
                self._done.set()  # wakes wait_ready; state is final by now
            logger.info(
                "model %s ready on %s/%s in %.1f s (vae loaded: %s)",
                self._model_id,
                self._device,
                self._dtype,
                seconds,
                self.mask_decoder is not None,
            )

    def _load_model(self) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoProcessor,
            PaliGemmaForConditionalGeneration,
        )

        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
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
            from core.quantize import quantization_load_kwargs, quantize_model

            quantization = self.settings.quantization
            model = PaliGemmaForConditionalGeneration.from_pretrained(
                source,
                token=token,
                dtype=getattr(torch, dtype),
                **quantization_load_kwargs(quantization, device),  # CUDA: bnb
            )
            model = model.to(device).eval()  # device_map would need accelerate
            model = quantize_model(model, quantization, device)  # CPU: int8
            logger.info("%s loaded, quantization %s", model_id, quantization)
        except ModelUnavailableError:
            raise
        except Exception as exc:
            raise ModelUnavailableError(hub_error_message(model_id, exc)) from exc
        self.processor, self.model = processor, model

    def _load_vae(self) -> None:
        try:
            from core.mask_decoder import MaskDecoder, resolve_vae_path

            self.mask_decoder = MaskDecoder.from_npz(resolve_vae_path(self.settings))
        except ModelUnavailableError as exc:
            self._set(vae_error=exc.message)
        except (OSError, ValueError) as exc:
            self._set(
                vae_error=f"The segmentation VAE could not be loaded ({exc}); set "
                "VAE_PATH to a valid vae-oid.npz."
            )
        if self._vae_error:
            logger.warning("masks unavailable: %s", self._vae_error)

    def _warm_up(self) -> None:
        image = Image.new("RGB", (32, 32), (128, 128, 128))
        self._generate(image, "caption en", {"max_new_tokens": 2}, use_cache=False)

    def start_background_load(self) -> threading.Thread:
        """Start ``load`` in a daemon thread (once); failures land in status."""
        with self._state_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._load_quietly, name="model-load", daemon=True
                )
                self._thread.start()
            return self._thread

    def _load_quietly(self) -> None:
        try:
            self.load()
        except ModelUnavailableError:
            pass  # already logged and recorded in status

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for loading to end; True when ready."""
        if self._state == "ready":
            return True
        self._done.wait(timeout_s)
        return self._state == "ready"

    def generate(
        self,
        image: Image.Image,
        prompt: str,
        *,
        max_new_tokens: int,
        do_sample: bool = False,
        top_p: float | None = None,
        top_k: int | None = None,
        temperature: float | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> GeneratedText:
        """Run PaliGemma on one RGB image and prompt; blocks, one run at a time.

        Returns the new tokens decoded with special tokens skipped
        (``<locDDDD>``/``<segDDD>`` stay), whitespace stripped. ``on_text``,
        when given, receives the answer piece by piece as words complete
        (called on this thread).
        Raises ModelUnavailableError while the model is not loaded.
        """
        if self.model is None or self._state != "ready":
            raise ModelUnavailableError(
                self._error or "The model is still loading; try again in a moment."
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        decoding: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
        }
        if do_sample:
            optional = {"top_p": top_p, "top_k": top_k, "temperature": temperature}
            decoding.update({k: v for k, v in optional.items() if v is not None})
        if on_text is not None:
            decoding["streamer"] = _callback_streamer(self.processor.tokenizer, on_text)
        return self._generate(image, prompt, decoding, use_cache=True)

    def _generate(
        self, image: Image.Image, prompt: str, decoding: dict[str, Any], use_cache: bool
    ) -> GeneratedText:
        import torch

        if IMAGE_TOKEN in prompt:
            logger.warning("removed %s from the prompt", IMAGE_TOKEN)
            prompt = prompt.replace(IMAGE_TOKEN, "")
        image = image if image.mode == "RGB" else image.convert("RGB")
        with self._run_lock, torch.inference_mode():
            inputs = self.processor(
                images=image, text=IMAGE_TOKEN + prompt, return_tensors="pt"
            )
            inputs = inputs.to(self.model.device)
            features = self._image_features(image, inputs["pixel_values"], use_cache)
            output = self.model.generate(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                token_type_ids=inputs["token_type_ids"],
                mm_encoder_outputs={"image": features},
                **decoding,
            )
        new_ids = output[0, inputs["input_ids"].shape[1] :].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        ended = any(token in eos_ids for token in new_ids)
        text = self.processor.decode(new_ids, skip_special_tokens=True).strip()
        return GeneratedText(
            text,
            truncated=not ended and len(new_ids) >= decoding["max_new_tokens"],
            num_tokens=len(new_ids),
        )

    def _image_features(self, image: Image.Image, pixel_values: Any, use_cache: bool):
        """The projected vision features of ``image``, from the LRU when there.

        Returns a BaseModelOutputWithPooling whose ``pooler_output`` is
        [1, image_seq_length, hidden] in the model dtype, as
        ``generate(mm_encoder_outputs={"image": ...})`` takes it.
        """
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pixel_values = pixel_values.to(self.model.dtype)
        if not use_cache or self._feature_cache_size == 0:
            return self.model.get_image_features(pixel_values, return_dict=True)
        key = (image_digest(image), self._model_id)
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

    def decode_masks(self, seg_indices: Any) -> np.ndarray:
        """int [N, 16] codes in 0..127 -> float32 [N, 64, 64] logits (> 0 inside).

        Raises ModelUnavailableError when the VAE is not loaded.
        """
        if self.mask_decoder is None:
            reason = self._vae_error or "The segmentation VAE is not loaded yet."
            raise ModelUnavailableError(
                f"{reason} Masks need the VAE: set VAE_PATH to vae-oid.npz."
                if "VAE_PATH" not in reason
                else reason
            )
        return self.mask_decoder.decode(seg_indices)


def _callback_streamer(tokenizer: Any, on_text: Callable[[str], None]) -> Any:
    """A transformers TextStreamer that hands finished words to ``on_text``."""
    from transformers import TextStreamer

    class CallbackStreamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return CallbackStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


_MANAGER: ModelManager | None = None
_MANAGER_LOCK = threading.Lock()


def get_model_manager(settings: Settings | None = None) -> ModelManager:
    """The process-wide ModelManager, created on first call (loads nothing)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            settings = settings or Settings.from_env()
            if (settings.model_id or "").startswith("replay:"):
                from core.replay import ReplayModel

                _MANAGER = ReplayModel(settings)
            elif settings.backend == "openai":
                from core.openai_backend import OpenAIBackend

                _MANAGER = OpenAIBackend(settings)  # type: ignore[assignment]
            else:
                _MANAGER = ModelManager(settings)
        elif settings is not None and settings != _MANAGER.settings:
            logger.warning("get_model_manager: ignoring new settings; one per process")
        return _MANAGER
