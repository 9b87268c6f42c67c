"""Kept for the paths in DESIGN.md: the engine seam now lives in core.engine."""

from core.engine import ModelStatus, get_model_manager
from core.engine.local import ModelManager

__all__ = ["ModelManager", "ModelStatus", "get_model_manager"]
