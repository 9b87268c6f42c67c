"""The process-wide services the chat handlers share, passed as one value."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings
from core.engine.local import ModelManager
from core.engine.queue import ModelQueue
from core.persist.service import Persistence
from core.ratelimit import RateLimiter


@dataclass(frozen=True)
class ChatServices:
    """Built once by chainlit_app.py at import; read by the chat helpers.

    ``queue`` is the one FIFO in front of ``manager`` (shared with the REST
    API); ``limiter`` counts chat requests per Chainlit session id.
    """

    settings: Settings
    persist: Persistence
    manager: ModelManager
    queue: ModelQueue
    limiter: RateLimiter
