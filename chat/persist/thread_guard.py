"""The data layer's own check of thread ids: canonical UUIDs only.

The doors (socket, routes, resume) refuse other spellings first
(core.security.threads); this is the last line, so no row is read, written or
deleted, and no ownership is checked, under a second spelling of an id. On
SQLite such a spelling is another key; PostgreSQL folds some spellings into
the UUID and rejects others, so the two databases would disagree otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from core.security.sessions import is_canonical_uuid
from core.security.threads import canonical_thread_id

logger = logging.getLogger(__name__)


def _refused(method: str, thread_id: object) -> None:
    logger.warning("data layer %s: refused thread id %.80r", method, thread_id)


class ThreadIdGuard:
    """Mixin before ``SQLAlchemyDataLayer``: reads of a non-canonical thread id
    find nothing (Chainlit then answers 404 "Thread not found"), writes and
    deletes raise ValueError."""

    async def get_thread_author(self, thread_id: str) -> str:
        if not is_canonical_uuid(thread_id):
            _refused("get_thread_author", thread_id)
            return ""  # Chainlit's is_thread_author: falsy -> 404
        return await super().get_thread_author(thread_id)  # type: ignore[misc]

    async def get_thread(self, thread_id: str) -> Any:
        if not is_canonical_uuid(thread_id):
            _refused("get_thread", thread_id)
            return None
        return await super().get_thread(thread_id)  # type: ignore[misc]

    async def get_element(self, thread_id: str, element_id: str) -> Any:
        if not is_canonical_uuid(thread_id):
            _refused("get_element", thread_id)
            return None
        return await super().get_element(thread_id, element_id)  # type: ignore[misc]

    async def update_thread(self, thread_id: str, *args: Any, **kwargs: Any) -> Any:
        canonical_thread_id(thread_id)
        return await super().update_thread(thread_id, *args, **kwargs)  # type: ignore[misc]

    async def delete_thread(self, thread_id: str) -> Any:
        canonical_thread_id(thread_id)
        return await super().delete_thread(thread_id)  # type: ignore[misc]

    async def create_step(self, step_dict: dict) -> Any:
        canonical_thread_id(step_dict.get("threadId"))
        return await super().create_step(step_dict)  # type: ignore[misc]
