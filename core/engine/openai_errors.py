"""A remote inference engine's failures, as chat-safe ModelUnavailableErrors.

Each message names the engine URL and the fix (start vLLM, the API key, the
timeout), so /ready and the chat say what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx

from core.config import DEFAULT_MODEL_CUDA
from core.engine.openai_wire import error_detail
from core.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

START_HINT = (
    "start the engine, e.g. `vllm serve google/paligemma2-3b-mix-448` "
    "(vLLM >= 0.14.0; see deploy/README.md), or set BACKEND=local"
)


def engine_root(url: str) -> str:
    """``http://host:8000/v1/`` -> ``http://host:8000`` (routes add /v1).

    Raises ValueError for anything but an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"BACKEND_URL must be an http(s) URL, got {url!r}")
    path = parts.path.rstrip("/").removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def choose_model(models: list[str], wanted: str | None, root: str) -> str:
    """The served model to use: MODEL_ID when listed; auto: the only one served,
    else the default checkpoint. Raises ModelUnavailableError naming the fix."""
    if wanted is None:
        if len(models) == 1:
            return models[0]
        if DEFAULT_MODEL_CUDA in models:
            return DEFAULT_MODEL_CUDA
        raise ModelUnavailableError(
            f"The engine at {root} serves {models or 'no model'}; set MODEL_ID to "
            "the PaliGemma model it should run."
        )
    if wanted not in models:
        raise ModelUnavailableError(
            f"The engine at {root} serves {models or 'no model'}, not "
            f"MODEL_ID={wanted}: start it with `vllm serve {wanted}` or set MODEL_ID "
            "to one of these."
        )
    return wanted


def malformed(root: str, detail: str) -> ModelUnavailableError:
    """The engine answered, but not in the chat-completions shape."""
    return ModelUnavailableError(
        f"The inference engine at {root} sent a malformed answer ({detail}); "
        "expected the OpenAI chat-completions format of vLLM >= 0.14.0."
    )


def raise_for_status(root: str, response: httpx.Response) -> None:
    """ModelUnavailableError with the engine's own message for a 4xx/5xx.

    The body must have been read (``response.read()`` for streams).
    """
    if not response.is_error:
        return
    detail = error_detail(response.content)
    hint = ""
    if response.status_code in (401, 403):
        hint = " Set BACKEND_API_KEY to the engine's --api-key."
    elif response.status_code == 404:
        hint = " Check BACKEND_URL (the engine's base URL, e.g. http://host:8000)."
    raise ModelUnavailableError(
        f"The inference engine at {root} refused the request "
        f"(HTTP {response.status_code}: {detail}).{hint}"
    )


@contextmanager
def engine_errors(root: str, timeout_s: float) -> Iterator[None]:
    """Turn httpx transport failures inside the block into ModelUnavailableError."""
    try:
        yield
    except httpx.ConnectError as exc:
        raise ModelUnavailableError(
            f"Cannot reach the inference engine at {root} ({exc}): {START_HINT}."
        ) from exc
    except httpx.TimeoutException as exc:
        raise ModelUnavailableError(
            f"The inference engine at {root} did not answer within {timeout_s:g} s "
            "(BACKEND_TIMEOUT_S); it may be overloaded or still loading the model. "
            "Try again, or raise BACKEND_TIMEOUT_S."
        ) from exc
    except httpx.TransportError as exc:
        raise ModelUnavailableError(
            f"The connection to the inference engine at {root} broke "
            f"({type(exc).__name__}: {exc}); try again."
        ) from exc
