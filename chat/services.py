"""The process-wide services the chat handlers share, passed as one value."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.photos import PhotoStore
from core.config import Settings
from core.engine.local import ModelManager
from core.engine.queue import ModelQueue
from core.engine.registry import EngineRegistry
from core.persist.service import Persistence
from core.ratelimit import RateLimiter


@dataclass(frozen=True)
class ChatServices:
    """Built once by chainlit_app.py at import; read by the chat helpers.

    ``queue`` is the one fair queue in front of ``manager`` (shared with the REST
    API); ``limiter`` counts chat work per logged-in user or client address
    (``chat.charge``), never per the client-chosen session id.
    ``engines`` holds every model of MODELS (``manager`` is its default);
    None: ``manager`` alone.
    ``photos`` holds the uploads decoded once (chat.photos).
    """

    settings: Settings
    persist: Persistence
    manager: ModelManager
    queue: ModelQueue
    limiter: RateLimiter
    photos: PhotoStore = field(default_factory=PhotoStore)
    engines: EngineRegistry | None = None

    def engine_for(self, model_id: str | None) -> ModelManager:
        """The engine of the chat's model setting ("" or None: the default).

        Raises ModelNotAllowedError for an id this server does not serve.
        """
        if self.engines is None or not model_id:
            return self.engines.default if self.engines else self.manager
        return self.engines.get(model_id)

    def start_loading(self) -> None:
        """Start loading every model in the background (once)."""
        (self.engines or self.manager).start_background_load()
