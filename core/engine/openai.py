"""PaliGemma served by an OpenAI-compatible engine (vLLM, Ray Serve LLM).

``BACKEND=openai`` with ``BACKEND_URL``: the same seam as the ModelManager
(``status``, ``load``, ``start_background_load``, ``wait_ready``, ``generate``,
``decode_masks``), but ``generate`` is one ``/v1/chat/completions`` call and
many may run at once (the engine batches them). Masks still go through the
local VAE decoder. Engine failures become ModelUnavailableError.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable

import httpx
from PIL import Image

from core.config import Settings
from core.engine.base import Engine, GenerationParams
from core.engine.openai_errors import (
    choose_model,
    engine_errors,
    engine_root,
    malformed,
    raise_for_status,
)
from core.engine.openai_http import EngineHttp
from core.engine.openai_wire import (
    PROBE_TEXT,
    TokenIdMap,
    WireError,
    chat_request,
    image_to_data_url,
    input_side_px,
    parse_completion,
    rebuild_text,
    served_models,
)
from core.errors import ModelUnavailableError
from core.types import GeneratedText

logger = logging.getLogger(__name__)

RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # background load: waits between tries


class OpenAIBackend(Engine):
    """Talks to one engine over HTTP; generate may run concurrently."""

    backend = "openai"

    def __init__(self, settings: Settings) -> None:
        if not settings.backend_url:
            raise ValueError("OpenAIBackend needs settings.backend_url (BACKEND_URL)")
        super().__init__(settings)
        self._device = self._dtype = "remote"
        self.root = engine_root(settings.backend_url)
        timeout = settings.backend_timeout_s
        headers = {}
        if settings.backend_api_key:
            headers["Authorization"] = f"Bearer {settings.backend_api_key}"
        self._client = httpx.Client(
            base_url=self.root,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )
        self._http = EngineHttp(self.root, self._client, timeout)
        self._attempted = threading.Event()  # set after each load attempt
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._wake = threading.Event()  # retry the load now (close, probe)
        self.token_ids = TokenIdMap()
        self.image_side_px: int | None = None  # the model's input side, px

    @property
    def batch_max(self) -> int:
        """Requests kept in flight to the engine (BATCH_MAX, default 32)."""
        return self.settings.batch_size("remote")

    def load(self) -> None:
        """Check the engine serves the model, learn its loc/seg ids, load the VAE.

        Idempotent; unlike the local model a failure is not final (the engine
        may come up later): the next call tries again. Raises
        ModelUnavailableError; a VAE failure is only recorded.
        """
        with self._load_lock:
            if self._state == "ready":
                return
            started = time.perf_counter()
            self._set(state="loading")
            try:
                self._set(model_id=self._served_model())
                self.image_side_px = self.settings.backend_image_px or input_side_px(
                    self._model_id
                )
                if self.image_side_px is None:
                    logger.warning(
                        "%s states no input size; images go up at up to 2048 px "
                        "(set BACKEND_IMAGE_PX to 224, 448 or 896)",
                        self._model_id,
                    )
                self.token_ids = self._probe_token_ids()
                if self.mask_decoder is None:
                    self._load_vae()
            except ModelUnavailableError as exc:
                self._set(state="failed", error=exc.message)
                logger.error("engine check failed: %s", exc.message)
                raise
            finally:
                self._attempted.set()
            self._set(
                state="ready", error=None, load_seconds=time.perf_counter() - started
            )
            self._ready.set()
            logger.info(
                "engine %s serves %s (loc id %d); vae loaded: %s",
                self.root,
                self._model_id,
                self.token_ids.loc_base,
                self.mask_decoder is not None,
            )

    def _served_model(self) -> str:
        models = served_models(self._http.call("GET", "/v1/models"))
        return choose_model(models, self.settings.model_id, self.root)

    def _probe_token_ids(self) -> TokenIdMap:
        """Ask vLLM's /tokenize where <loc0000>/<seg000> are; the real ids if not."""
        body = {
            "model": self._model_id,
            "prompt": PROBE_TEXT,
            "add_special_tokens": False,
        }
        try:
            response = self._client.post("/tokenize", json=body)
            response.raise_for_status()
            found = TokenIdMap.from_probe(response.json().get("tokens"))
        except (httpx.HTTPError, ValueError, AttributeError, TypeError) as exc:
            logger.info("engine has no usable /tokenize (%s): real PaliGemma ids", exc)
            return TokenIdMap()
        if found is None:
            logger.warning("engine tokenizes %s oddly: assuming real ids", PROBE_TEXT)
            return TokenIdMap()
        return found

    def _load_model(self) -> None:  # load() is overridden: retried, not final
        raise NotImplementedError

    def _background_load(self) -> None:
        """Try ``load`` until it succeeds (or ``close``)."""
        for attempt in itertools.count():
            try:
                self.load()
                return
            except ModelUnavailableError:
                wait = RETRY_S[min(attempt, len(RETRY_S) - 1)]
                self._wake.wait(wait)  # a probe that got an answer cuts it short
                self._wake.clear()
                if self._closed.is_set():
                    return

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` until ready (background retries included)."""
        if self._thread is not None and self._thread.is_alive():
            return self._ready.wait(timeout_s)
        self._attempted.wait(timeout_s)
        return self._state == "ready"

    def close(self) -> None:
        """Stop background retries and close the HTTP client."""
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()

    def _not_ready_message(self) -> str:
        return "The inference engine is not checked yet; try again."

    def probe(self, timeout_s: float) -> None:
        """GET /v1/models within ``timeout_s``: the engine answers and, once
        loaded, still serves our model. An answer while not loaded wakes the
        background retry at once (not after its back-off, up to 30 s).
        Raises ModelUnavailableError naming the engine and the fix."""
        with engine_errors(self.root, timeout_s):
            try:
                response = self._client.get("/v1/models", timeout=timeout_s)
            except httpx.TimeoutException as exc:
                raise ModelUnavailableError(
                    f"The inference engine at {self.root} did not answer GET "
                    f"/v1/models within {timeout_s:g} s (READY_PROBE_TIMEOUT_S)."
                ) from exc
            raise_for_status(self.root, response)
            try:
                models = served_models(response.json())
            except (ValueError, WireError) as exc:
                raise malformed(self.root, f"/v1/models: {exc}") from exc
        if self._state != "ready":  # status says why; the retry runs now
            self._wake.set()
            return
        if self._model_id not in models:
            raise ModelUnavailableError(
                f"The engine at {self.root} no longer serves {self._model_id} "
                f"(it serves {models or 'no model'}); restart it with that model."
            )

    def _generate(
        self,
        image: Image.Image,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None = None,
    ) -> GeneratedText:
        """One chat completion; thread-safe, runs concurrently.

        loc/seg tokens are rebuilt from the token ids; ``truncated`` when the
        engine stopped at ``max_new_tokens`` (finish_reason "length"). A
        streamed answer is closed at the next piece once ``cancel`` is set
        (the engine then stops generating it): with ``cancel`` the answer is
        always streamed.
        """
        body = chat_request(
            self._model_id,
            image_to_data_url(image, side_px=self.image_side_px),
            prompt,
            params,
            stream=on_text is not None or cancel is not None,
        )
        if on_text is None and cancel is None:
            completion = self._http.wire(
                parse_completion, self._http.call("POST", "/v1/chat/completions", body)
            )
        else:
            completion = self._http.stream(body, on_text or _no_text, cancel)
        text = rebuild_text(completion.text, completion.token_ids, self.token_ids)
        return GeneratedText(
            text,
            truncated=completion.finish_reason == "length",
            num_tokens=completion.num_tokens,
        )


def _no_text(piece: str) -> None:
    """on_text for a stream that nobody watches (streamed only to be stoppable)."""
