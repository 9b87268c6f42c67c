"""The process-wide services the chat handlers share, passed as one value."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.photos import PhotoStore
from core.config import Settings
from core.engine.base import Engine
from core.engine.queue import ModelQueue
from core.engine.registry import EngineRegistry
from core.persist.service import Persistence
from core.service import Services


@dataclass(frozen=True)
class ChatServices:
    """Built once by chainlit_app.py at import; read by the chat helpers.

    ``service`` is the process's one application service (core.service): its
    engines, its fair queue and its rate limiter are the REST API's too, so
    one person's chat and API work count against one RATE_LIMIT.
    ``photos`` holds the uploads decoded once (chat.photos).
    """

    service: Services
    persist: Persistence
    photos: PhotoStore = field(default_factory=PhotoStore)

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def engines(self) -> EngineRegistry:
        return self.service.engines

    @property
    def queue(self) -> ModelQueue:
        return self.service.queue

    def engine_for(self, model_id: str | None) -> Engine:
        """The engine of the chat's model setting ("" or None: the default).

        Raises ModelNotAllowedError for an id this server does not serve.
        """
        return self.service.engine_for(model_id or None)
