"""The model behind the app: one seam (``Engine``), three backends, one factory.

``get_model_manager()`` is the only place that knows every backend: the local
transformers PaliGemma (``core.engine.local``), an OpenAI-compatible engine
such as vLLM (``core.engine.openai``), and a replay of recorded answers
(``core.engine.replay``, ``MODEL_ID=replay:<file>``).
"""

from __future__ import annotations

import logging
import threading

from core.config import Settings
from core.engine.base import Engine, GenerationParams, ModelStatus

__all__ = ["Engine", "GenerationParams", "ModelStatus", "get_model_manager"]

logger = logging.getLogger(__name__)

_MANAGER: Engine | None = None
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


def get_model_manager(settings: Settings | None = None) -> Engine:
    """The process-wide engine, created on first call (loads nothing)."""
    global _MANAGER
    with _MANAGER_LOCK:
        if _MANAGER is None:
            _MANAGER = create_engine(settings or Settings.from_env())
        elif settings is not None and settings != _MANAGER.settings:
            logger.warning("get_model_manager: ignoring new settings; one per process")
        return _MANAGER
