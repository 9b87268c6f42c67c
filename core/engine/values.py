"""Values that cross the engine seam: where loading stands (``ModelStatus``)
and how to decode one answer (``GenerationParams``). Importable from
``core.engine.base`` too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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


@dataclass(frozen=True)
class GenerationParams:
    """How to decode one answer; validated when built.

    ``top_p``/``top_k``/``temperature`` only apply when ``do_sample``; None
    leaves the backend's default. ``top_k`` 0 means no top-k cut.
    """

    max_new_tokens: int
    do_sample: bool = False
    top_p: float | None = None
    top_k: int | None = None
    temperature: float | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")

    def sampling(self) -> dict[str, Any]:
        """The sampling options that are set, as keyword arguments (may be {})."""
        if not self.do_sample:
            return {}
        optional = {
            "top_p": self.top_p,
            "top_k": self.top_k,
            "temperature": self.temperature,
        }
        return {name: value for name, value in optional.items() if value is not None}
