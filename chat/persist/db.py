"""The chat history database: Chainlit's SQLAlchemy data layer on SQLite or
PostgreSQL, with its tables created on first start.

The tables are the ones Chainlit documents for ``SQLAlchemyDataLayer``
(users, threads, steps, elements, feedbacks), with a column for every key a
Chainlit 2.12 step or element can carry; statements use ``IF NOT EXISTS`` so
starting again is a no-op.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.storage_clients.base import BaseStorageClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from chat.persist.history_writes import KeptWrites
from chat.persist.thread_guard import ThreadIdGuard
from core.persist.locations import thread_folder
from core.persist.outbox import HistoryOutbox

logger = logging.getLogger(__name__)

_TYPES = {
    "sqlite": {"uuid": "TEXT", "json": "TEXT", "array": "TEXT", "bool": "BOOLEAN"},
    "postgresql": {
        "uuid": "UUID",
        "json": "JSONB",
        "array": "TEXT[]",
        "bool": "BOOLEAN",
    },
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    "id" {uuid} PRIMARY KEY,
    "identifier" TEXT NOT NULL UNIQUE,
    "metadata" {json} NOT NULL,
    "createdAt" TEXT
);
CREATE TABLE IF NOT EXISTS threads (
    "id" {uuid} PRIMARY KEY,
    "createdAt" TEXT,
    "name" TEXT,
    "userId" {uuid},
    "userIdentifier" TEXT,
    "tags" {array},
    "metadata" {json},
    FOREIGN KEY ("userId") REFERENCES users("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS steps (
    "id" {uuid} PRIMARY KEY,
    "name" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "threadId" {uuid} NOT NULL,
    "parentId" {uuid},
    "streaming" {bool} NOT NULL,
    "waitForAnswer" {bool},
    "isError" {bool},
    "metadata" {json},
    "tags" {array},
    "input" TEXT,
    "output" TEXT,
    "createdAt" TEXT,
    "command" TEXT,
    "modes" {json},
    "start" TEXT,
    "end" TEXT,
    "generation" {json},
    "showInput" TEXT,
    "language" TEXT,
    "indent" INT,
    "defaultOpen" {bool},
    "autoCollapse" {bool},
    "icon" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS elements (
    "id" {uuid} PRIMARY KEY,
    "threadId" {uuid},
    "type" TEXT,
    "url" TEXT,
    "chainlitKey" TEXT,
    "name" TEXT NOT NULL,
    "display" TEXT,
    "objectKey" TEXT,
    "size" TEXT,
    "page" INT,
    "language" TEXT,
    "forId" {uuid},
    "mime" TEXT,
    "props" {json},
    "autoPlay" {bool},
    "playerConfig" {json},
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS feedbacks (
    "id" {uuid} PRIMARY KEY,
    "forId" {uuid} NOT NULL,
    "threadId" {uuid} NOT NULL,
    "value" INT NOT NULL,
    "comment" TEXT,
    FOREIGN KEY ("threadId") REFERENCES threads("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS steps_thread ON steps ("threadId");
CREATE INDEX IF NOT EXISTS elements_thread ON elements ("threadId");
CREATE INDEX IF NOT EXISTS threads_user ON threads ("userId");
"""
TABLES = ("users", "threads", "steps", "elements", "feedbacks")


def dialect_of(url: str) -> str:
    """ "sqlite" or "postgresql"."""
    return make_url(url).get_backend_name()


def schema_statements(dialect: str) -> list[str]:
    """The CREATE statements for ``dialect`` ("sqlite" or "postgresql")."""
    if dialect not in _TYPES:
        raise ValueError(f"no schema for {dialect!r}; known: {sorted(_TYPES)}")
    ddl = _SCHEMA.format(**_TYPES[dialect])
    return [s.strip() for s in ddl.split(";") if s.strip()]


class AppDataLayer(ThreadIdGuard, KeptWrites, SQLAlchemyDataLayer):
    """``SQLAlchemyDataLayer`` that creates its tables, binds JSON values on
    either database, deletes a thread's image folder with the thread, and
    takes canonical thread ids only (ThreadIdGuard).

    Chainlit fires step and element writes as background tasks. Here they run
    one at a time in the order they were started (a step's update can no
    longer land before its creation and be overwritten by it), and ``flush``
    waits for those in flight, so a reply is stored before its task ends.
    Every statement answers within ``write_timeout_s``; a write the database
    does not take is retried once, then kept in memory and replayed in order
    when it is back (KeptWrites, core.persist.outbox).
    """

    def __init__(
        self,
        url: str,
        storage: BaseStorageClient,
        threads_root: str | Path,
        write_timeout_s: float = 5.0,
    ) -> None:
        self.dialect = dialect_of(url)
        connect_args = {"timeout": 30} if self.dialect == "sqlite" else {}
        if self.dialect == "sqlite":
            Path(make_url(url).database).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(url, connect_args=connect_args, storage_provider=storage)
        self.threads_root = Path(threads_root)
        self.outbox = HistoryOutbox(write_timeout_s)

    async def create_schema(self) -> None:
        """Create the tables if missing (idempotent); SQLite switches to WAL.

        Raises RuntimeError naming the database (password hidden) when it
        cannot be reached or written.
        """
        try:
            async with self.engine.begin() as connection:
                if self.dialect == "sqlite":
                    await connection.execute(text("PRAGMA journal_mode=WAL"))
                for statement in schema_statements(self.dialect):
                    await connection.execute(text(statement))
        except (OSError, SQLAlchemyError) as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise RuntimeError(
                f"could not create the chat history tables in {where}: {exc}; "
                "check DATABASE_URL (or unset it for the SQLite file in DATA_DIR)"
            ) from exc
        logger.info("chat history database ready (%s)", self.dialect)

    async def execute_sql(self, query: str, parameters: dict) -> Any:
        return await super().execute_sql(query, self._bindable(parameters))

    def _bindable(self, parameters: dict) -> dict:
        """dicts (and lists on SQLite) as JSON text; the drivers take no others."""
        bound = {}
        for key, value in parameters.items():
            if isinstance(value, dict) or (
                isinstance(value, list) and self.dialect == "sqlite"
            ):
                value = json.dumps(value)
            bound[key] = value
        return bound

    async def delete_thread(self, thread_id: str) -> None:
        """Delete the thread, its stored elements and its image folder."""
        await super().delete_thread(thread_id)
        folder = thread_folder(self.threads_root, thread_id)
        if folder.exists():
            shutil.rmtree(folder)
            logger.info("deleted the files of thread %s", thread_id)
