"""Chainlit's history data layer, built from core.persist's Persistence switch.

``make_data_layer`` for ``@cl.data_layer``, ``start`` at app start (tables,
the route of stored files), ``flush`` after each reply.
"""

from __future__ import annotations

import logging

from chat.persist.db import AppDataLayer
from chat.persist.storage import LocalStorageClient, install_file_route
from core.persist.service import Persistence

logger = logging.getLogger(__name__)


def make_data_layer(persist: Persistence) -> AppDataLayer | None:
    """The data layer Chainlit should use (``@cl.data_layer``); None when off."""
    if not persist.enabled:
        return None
    storage = LocalStorageClient(persist.files_root, persist.auth_secret)
    return AppDataLayer(
        persist.database_url, storage, persist.threads_root, persist.write_timeout_s
    )


async def start(persist: Persistence, app, data_layer: AppDataLayer | None) -> None:
    """At app start: create the tables and serve the stored files."""
    if not persist.enabled or data_layer is None:
        return
    await data_layer.create_schema()
    install_file_route(app, data_layer.storage_provider)
    logger.info(
        "chat history on (%s), users: %s",
        data_layer.dialect,
        ", ".join(sorted(persist.users)),
    )


async def flush(persist: Persistence, data_layer: AppDataLayer | None) -> int | None:
    """Wait for the history writes of the reply just sent (when on), at most
    HISTORY_WRITE_TIMEOUT_S. Returns the number of the database outage going on
    (writes kept in memory, core.persist.outbox), else None.
    """
    if not (persist.enabled and isinstance(data_layer, AppDataLayer)):
        return None
    await data_layer.flush()
    outbox = data_layer.outbox
    return None if outbox.saving else outbox.outage
