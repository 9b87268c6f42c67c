"""The model behind the app: one seam (``Engine``), three backends, one factory.

``create_engine()`` is the only place that knows every backend: the local
transformers PaliGemma (``core.engine.local``), an OpenAI-compatible engine
such as vLLM (``core.engine.openai``), and a replay of recorded answers
(``core.engine.replay``, ``MODEL_ID=replay:<file>``). ``get_engines()`` builds
the process-wide registry of every checkpoint in ``MODELS`` (default first);
``get_model_manager()`` is its default engine.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from core.config import Settings
from core.engine.base import Engine, GenerationParams, ModelStatus
from core.engine.registry import EngineRegistry

__all__ = [
    "Engine",
    "EngineRegistry",
    "GenerationParams",
    "ModelStatus",
    "create_registry",
    "get_engines",
    "get_model_manager",
]

logger = logging.getLogger(__name__)

_REGISTRY: EngineRegistry | None = None
_MANAGER_LOCK = threading.Lock()


def create_engine(settings: Settings) -> Engine:
    """A new, unloaded engine for ``settings`` (replay, openai or local)."""
    if (settings.model_id or "").startswith("replay:"):
        from core.engine.replay import ReplayModel

        return ReplayModel(settings)
    if settings.backend == "openai":
        from core.engine.openai import OpenAIBackend

        return OpenAIBackend(settings)
    from core.engine.local import ModelManager

    return ModelManager(settings)


def create_registry(settings: Settings) -> EngineRegistry:
    """New, unloaded engines for every id of ``settings.model_ids``, in order."""
    engines = {
        model_id or "auto": create_engine(replace(settings, model_id=model_id))
        for model_id in settings.model_ids
    }
    return EngineRegistry(settings, engines)


def get_engines(settings: Settings | None = None) -> EngineRegistry:
    """The process-wide registry, created on first call (loads nothing)."""
    global _REGISTRY
    with _MANAGER_LOCK:
        if _REGISTRY is None:
            _REGISTRY = create_registry(settings or Settings.from_env())
        elif settings is not None and settings != _REGISTRY.settings:
            logger.warning("get_engines: ignoring new settings; one per process")
        return _REGISTRY


def get_model_manager(settings: Settings | None = None) -> Engine:
    """The process-wide default engine (the first of MODELS; loads nothing)."""
    return get_engines(settings).default
