"""Where the chat history lives: its database URL and each thread's folder.

Framework-free (SQLAlchemy's URL parser only): Persistence checks DATABASE_URL
with it at start, and the Chainlit data layer (chat.persist.db) uses both.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from core.security.threads import canonical_thread_id

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


def async_database_url(url: str | None, data_dir: str | Path) -> str:
    """An SQLAlchemy async URL: the given SQLite/PostgreSQL URL with its async
    driver, or a SQLite file ``data_dir/chat.db`` when ``url`` is empty.

    Raises ValueError for any other database.
    """
    if not url:
        return f"sqlite+aiosqlite:///{Path(data_dir).expanduser() / 'chat.db'}"
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError
        raise ValueError(f"DATABASE_URL does not parse: {exc}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            "DATABASE_URL must be sqlite:///<file> or postgresql://user:pass@host/db, "
            f"got the {parsed.drivername!r} scheme"
        )
    if driver.startswith("sqlite") and parsed.database in (None, "", ":memory:"):
        raise ValueError("DATABASE_URL for SQLite must name a file: sqlite:///<path>")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def thread_folder(root: str | Path, thread_id: str) -> Path:
    """``root/<thread id>``; ValueError unless ``thread_id`` is a canonical
    UUID. Other spellings of one UUID are refused, not folded: the ownership
    check and the database rows key on the id as given (core.security.threads).
    """
    return Path(root) / canonical_thread_id(thread_id)
