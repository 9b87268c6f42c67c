"""The engine seam: what the chat, the API and the pipeline need of a model.

Every backend (local transformers, an OpenAI-compatible engine, a replay of
recorded answers) subclasses ``Engine`` and implements ``_load_model`` and
``_generate``; status, loading, the VAE, ``decode_masks`` and the prompt
guard live here once. Backends import this module only; the factory in
``core.engine`` is the only place that knows them all.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from core.config import Settings
from core.engine.values import GenerationParams, ModelStatus
from core.errors import ModelUnavailableError, RequestCancelledError
from core.tokens import IMAGE_TOKEN
from core.types import GeneratedText

logger = logging.getLogger(__name__)

__all__ = [
    "CANCELLED",
    "NOT_LOADED",
    "Engine",
    "GenerationParams",
    "ModelStatus",
    "guard_prompt",
]

NOT_LOADED = "The model is still loading; try again in a moment."
CANCELLED = "The request was cancelled before its answer was finished."


def guard_prompt(prompt: str) -> str:
    """``prompt`` without the image token (the backends put it first themselves)."""
    if IMAGE_TOKEN in prompt:
        logger.warning("removed %s from the prompt", IMAGE_TOKEN)
        prompt = prompt.replace(IMAGE_TOKEN, "")
    return prompt


class Engine(ABC):
    """One model behind the app: load once, report status, generate, decode masks.

    Subclasses implement ``_load_model`` (raise ModelUnavailableError with the
    fix) and ``_generate``; they may override ``_warm_up`` and the status
    fields. Loading is idempotent and thread-safe; a failure is final unless
    the subclass overrides ``load`` (the remote engine retries).
    """

    backend = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._load_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._model_id = settings.model_id or "auto"
        self._device = settings.device
        self._dtype = settings.dtype
        self._error: str | None = None
        self._vae_error: str | None = None
        self._load_seconds: float | None = None
        self.mask_decoder: Any = None

    @property
    def batch_max(self) -> int:
        """Concurrent ``generate`` calls this engine answers in one model run
        (core.tiling sends a photo's tiles that many at a time)."""
        return 1

    # -- status ---------------------------------------------------------------
    @property
    def status(self) -> ModelStatus:
        with self._state_lock:
            return ModelStatus(
                state=self._state,
                model_id=self._model_id,
                device=self._device,
                dtype=self._dtype,
                model_loaded=self._model_loaded(),
                vae_loaded=self.mask_decoder is not None,
                error=self._error if self._error else self._vae_error,
                load_seconds=self._load_seconds,
                backend=self.backend,
            )

    def _model_loaded(self) -> bool:
        return self._state == "ready"

    def _set(self, **values: Any) -> None:
        with self._state_lock:
            for name, value in values.items():
                setattr(self, f"_{name}", value)

    # -- loading --------------------------------------------------------------
    def load(self) -> None:
        """Load the model, then the VAE, and warm up; once per process.

        Later calls return at once, or re-raise the recorded failure. Raises
        ModelUnavailableError when the model cannot be loaded; a VAE failure
        is only recorded (see decode_masks).
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

    @abstractmethod
    def _load_model(self) -> None:
        """Load weights (or connect); raise ModelUnavailableError with the fix."""

    def _warm_up(self) -> None:
        """Run once after loading so that no user pays first-call costs."""
        return  # nothing to warm by default

    def _load_vae(self) -> None:
        try:
            from core.mask_decoder import MaskDecoder, resolve_vae_path

            self.mask_decoder = MaskDecoder.from_npz(resolve_vae_path(self.settings))
            self._set(vae_error=None)
        except ModelUnavailableError as exc:
            self._set(vae_error=exc.message)
        except (OSError, ValueError) as exc:
            self._set(
                vae_error=f"The segmentation VAE could not be loaded ({exc}); set "
                "VAE_PATH to a valid vae-oid.npz."
            )
        if self._vae_error:
            logger.warning("masks unavailable: %s", self._vae_error)

    def start_background_load(self) -> threading.Thread:
        """Start ``load`` in a daemon thread (once); failures land in status."""
        with self._state_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._background_load, name="model-load", daemon=True
                )
                self._thread.start()
            return self._thread

    def _background_load(self) -> None:
        try:
            self.load()
        except ModelUnavailableError:
            pass  # already logged and recorded in status

    def mark_unavailable(self, message: str) -> None:
        """Record that this engine will not be loaded (e.g. no memory left for
        it); final, like a failed load. ``message`` is chat-safe."""
        with self._load_lock:
            if self._state == "ready":
                return
            self._set(state="failed", error=message)
            self._done.set()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for loading to end; True when ready."""
        if self._state == "ready":
            return True
        self._done.wait(timeout_s)
        return self._state == "ready"

    def close(self) -> None:
        """Release what the engine holds (threads, connections); default nothing."""
        return

    def probe(self, timeout_s: float) -> None:
        """Check that the engine answers now (/ready); blocks up to ``timeout_s``.

        In process: loaded and not failed. Raises ModelUnavailableError with
        the reason otherwise; a remote engine asks its server (OpenAIBackend).
        """
        if self._state != "ready":
            raise ModelUnavailableError(self._error or self._not_ready_message())

    # -- running --------------------------------------------------------------
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
        cancel: threading.Event | None = None,
    ) -> GeneratedText:
        """Answer ``prompt`` about one image; blocks the calling thread.

        Returns the new tokens decoded with special tokens skipped
        (``<locDDDD>``/``<segDDD>`` stay), whitespace stripped, with
        ``truncated`` and ``num_tokens``. ``on_text``, when given, receives the
        answer piece by piece (on this thread). Once ``cancel`` is set the
        backend stops at its next token and RequestCancelledError is raised.
        Raises ModelUnavailableError while the model is not ready, ValueError
        for invalid generation parameters.
        """
        if self._state != "ready":
            raise ModelUnavailableError(self._error or self._not_ready_message())
        params = GenerationParams(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            top_p=top_p,
            top_k=top_k,
            temperature=temperature,
        )
        image = image if image.mode == "RGB" else image.convert("RGB")
        if cancel is not None and cancel.is_set():
            raise RequestCancelledError(CANCELLED)
        text = self._generate(image, guard_prompt(prompt), params, on_text, cancel)
        if cancel is not None and cancel.is_set():
            logger.info("generation cancelled after %d token(s)", text.num_tokens)
            raise RequestCancelledError(CANCELLED)
        return text

    def _not_ready_message(self) -> str:
        return NOT_LOADED

    @abstractmethod
    def _generate(
        self,
        image: Image.Image,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None = None,
    ) -> GeneratedText:
        """Run the model; ``prompt`` is guarded, ``image`` is RGB. Stop at the
        next token once ``cancel`` is set (return what there is)."""

    def decode_masks(self, seg_indices: Any) -> np.ndarray:
        """int [N, 16] codes in 0..127 -> float32 [N, 64, 64] logits (> 0 inside).

        Raises ModelUnavailableError (naming VAE_PATH) when the VAE is not loaded.
        """
        if self.mask_decoder is None:
            reason = self._vae_error or "The segmentation VAE is not loaded yet."
            if "VAE_PATH" not in reason:
                reason = f"{reason} Masks need the VAE: set VAE_PATH to vae-oid.npz."
            raise ModelUnavailableError(reason)
        return self.mask_decoder.decode(seg_indices)
