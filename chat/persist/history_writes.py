"""Chainlit's SQLAlchemy data layer with writes that are never silently lost.

Chainlit 2.12's ``SQLAlchemyDataLayer.execute_sql`` turns every database
error into a log warning and ``None``: a stopped database loses the thread
and nobody is told, a hung one holds the caller forever. ``KeptWrites``
(a mixin before ``SQLAlchemyDataLayer``):

- bounds every statement by the outbox's ``timeout_s`` (HISTORY_WRITE_TIMEOUT_S);
- inside a write, raises ``HistoryUnavailable`` for a database that fails or
  does not answer, so the write is retried once or kept in memory and
  replayed in order when the database is back (core.persist.outbox); reads
  still answer "nothing" as Chainlit expects;
- bounds the login's user row (``create_user``) as a whole.

The writes run the undecorated Chainlit bodies through the outbox, and keep
Chainlit's own queue of writes made before the first message
(``queue_until_user_message``): when that queue is flushed, it calls these
methods, so those writes are ordered and kept too.
"""

from __future__ import annotations

import logging
from typing import Any

from chainlit.data.sql_alchemy import SQLAlchemyDataLayer
from chainlit.data.utils import queue_until_user_message
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from core.persist.outbox import IN_WRITE, HistoryOutbox, HistoryUnavailable, bounded

logger = logging.getLogger(__name__)

# What says "the database is away" (kept and retried), unlike a refused
# statement (IntegrityError, ProgrammingError: logged and dropped, as before).
_OUTAGES = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
    OSError,
    TimeoutError,
)
_RAW = SQLAlchemyDataLayer  # the undecorated bodies: Chainlit's ``__wrapped__``


def _raw(name: str):
    method = getattr(_RAW, name)
    return getattr(method, "__wrapped__", method)


class KeptWrites:
    """Mixin before ``SQLAlchemyDataLayer``; the class sets ``self.outbox``."""

    outbox: HistoryOutbox

    async def execute_sql(self, query: str, parameters: dict) -> Any:
        try:
            return await self._bounded_statement(query, parameters)
        except HistoryUnavailable as exc:
            if IN_WRITE.get():
                raise
            if not exc.timed_out:  # e.g. the pool's connections died in a restart
                try:
                    return await self._bounded_statement(query, parameters)
                except HistoryUnavailable as again:
                    exc = again
            logger.warning("history read failed: %s", exc)
            return None

    async def _bounded_statement(self, query: str, parameters: dict) -> Any:
        timeout_s = self.outbox.timeout_s
        statement = self._statement(query, parameters)
        return await bounded(statement, timeout_s, "history database")

    async def _statement(self, query: str, parameters: dict) -> Any:
        """Chainlit's ``execute_sql``, raising HistoryUnavailable for outages."""
        async with self.async_session() as session:  # type: ignore[attr-defined]
            try:
                await session.begin()
                result = await session.execute(text(query), parameters)
                await session.commit()
            except _OUTAGES as exc:
                raise HistoryUnavailable(f"{type(exc).__name__}: {exc}") from exc
            except sa_exc.SQLAlchemyError as exc:
                await session.rollback()
                logger.warning("history statement refused: %s", exc)
                return None
            if not result.returns_rows:
                return result.rowcount
            rows = [dict(row._mapping) for row in result.fetchall()]
            return self.clean_result(rows)  # type: ignore[attr-defined]

    async def get_user(self, identifier: str) -> Any:
        """The user's row; while the database is away, the row last read by
        this process (so a chat opened then still gets its owner)."""
        known: dict[str, Any] = self.__dict__.setdefault("_known_users", {})
        token = IN_WRITE.set(True)  # an outage raises, unlike "no such user"
        try:
            user = await super().get_user(identifier)  # type: ignore[misc]
        except HistoryUnavailable as exc:
            logger.warning("history: user %s read from memory: %s", identifier, exc)
            return known.get(identifier)
        finally:
            IN_WRITE.reset(token)
        if user is not None:
            known[identifier] = user
        return user

    async def create_user(self, user: Any) -> Any:
        """The login's user row, within the timeout (None past it: the login
        goes on, Chainlit logs it)."""
        try:
            return await bounded(
                super().create_user(user),  # type: ignore[misc]
                self.outbox.timeout_s,
                "saving the user row",
            )
        except HistoryUnavailable as exc:
            logger.error("user %s not saved in the history: %s", user.identifier, exc)
            return None

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until the writes started so far are done or kept; False past
        ``timeout_s`` (default HISTORY_WRITE_TIMEOUT_S)."""
        return await self.outbox.flush(timeout_s)

    async def update_thread(self, thread_id: str, *args: Any, **kwargs: Any) -> Any:
        # Chainlit creates a new thread's row (with its user) from a task of
        # its own: in order with the other writes, so ``flush`` waits for it.
        return await self.outbox.write(
            thread_id,
            "update_thread",
            lambda: _raw("update_thread")(self, thread_id, *args, **kwargs),
        )

    @queue_until_user_message()
    async def create_step(self, step_dict: dict) -> Any:
        return await self.outbox.write(
            step_dict.get("threadId"),
            "create_step",
            lambda: _raw("create_step")(self, step_dict),
        )

    @queue_until_user_message()
    async def update_step(self, step_dict: dict) -> Any:
        return await self.outbox.write(  # Chainlit's update_step is create_step
            step_dict.get("threadId"),
            "update_step",
            lambda: _raw("create_step")(self, step_dict),
        )

    @queue_until_user_message()
    async def delete_step(self, step_id: str) -> Any:
        return await self.outbox.write(
            None, "delete_step", lambda: _raw("delete_step")(self, step_id)
        )

    @queue_until_user_message()
    async def create_element(self, element: Any) -> Any:
        return await self.outbox.write(
            getattr(element, "thread_id", None),
            "create_element",
            lambda: _raw("create_element")(self, element),
        )

    @queue_until_user_message()
    async def delete_element(self, element_id: str, thread_id: str | None = None):
        return await self.outbox.write(
            thread_id,
            "delete_element",
            lambda: _raw("delete_element")(self, element_id, thread_id),
        )
