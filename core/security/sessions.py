"""Chainlit session ids: canonical UUIDs only, and their folders inside the root.

Chainlit 2.12 takes the socket's ``auth.sessionId`` from the client unchecked and
uses it as a path (``FILES_DIRECTORY / session_id``; ``rmtree`` on clear_session
and on session timeout; ``/project/file?session_id=`` writes there). An absolute
id replaces the root, ``../`` climbs out of it. These guards run before Chainlit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SESSION_ID_HINT = "sessionId must be a canonical UUID (e.g. from crypto.randomUUID())"


def is_canonical_uuid(value: object) -> bool:
    """True for ``xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`` in lowercase hex only.

    ``uuid.UUID`` alone also accepts braces, ``urn:uuid:`` and missing hyphens;
    the round trip keeps exactly the form browsers send.
    """
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def folder_inside(root: Path, name: str) -> Path:
    """``root / name`` resolved, refused unless it is a direct child of ``root``.

    Raises ValueError (expected vs got); nothing is created or removed here.
    """
    base = root.resolve()
    folder = (base / name).resolve()
    if folder.parent != base:
        raise ValueError(
            f"a session folder must be a direct child of {base.name}/, got "
            f"{name!r}; {SESSION_ID_HINT}"
        )
    return folder


def session_folder(files_root: Path, session_id: object) -> Path:
    """The files folder of a session: only for a canonical UUID, and only as a
    direct child of ``files_root``. Raises ValueError before anything is
    created or removed (chat.security makes Chainlit's ``files_dir`` use it)."""
    if not is_canonical_uuid(session_id):
        raise ValueError(f"session id {session_id!r} refused: {SESSION_ID_HINT}")
    return folder_inside(files_root, str(session_id))


ConnectHandler = Callable[[str, dict, Any], Awaitable[Any]]
AuthCheck = Callable[[dict], str | None]


def session_id_refusal(auth: object) -> str | None:
    """Why a socket ``auth`` payload is refused, or None when its id is fine."""
    if not isinstance(auth, dict):
        return "the socket auth payload must be an object"
    if not is_canonical_uuid(auth.get("sessionId")):
        return SESSION_ID_HINT
    return None


def wrap_connect(
    original: ConnectHandler,
    origin_refusal: Callable[[dict], str | None],
    auth_checks: tuple[AuthCheck, ...] = (),
) -> ConnectHandler:
    """Chainlit's socket connect handler behind the Origin, session id and
    ``auth_checks`` (e.g. the thread id: core.security.threads) checks."""

    async def connect(sid: str, environ: dict, auth: Any = None) -> Any:
        reason = origin_refusal(environ) or session_id_refusal(auth)
        if reason is None:  # auth is a dict from here on
            reason = next(filter(None, (check(auth) for check in auth_checks)), None)
        if reason is not None:
            peer = environ.get("REMOTE_ADDR", "?")
            logger.warning("refused socket connection from %s: %s", peer, reason)
            raise ConnectionRefusedError(reason)
        return await original(sid, environ, auth)

    connect._guarded = True  # type: ignore[attr-defined]
    return connect


def install_socket_guard(
    sio: Any,
    origin_refusal: Callable[[dict], str | None],
    auth_checks: tuple[AuthCheck, ...] = (),
):
    """Replace the connect handler on Chainlit's socket.io server. Idempotent."""
    handlers = sio.handlers.get("/", {})
    original = handlers.get("connect")
    if original is None:
        raise RuntimeError(
            "Chainlit's socket connect handler is not registered yet; import "
            "chainlit.socket (chainlit.server does) before installing the guard"
        )
    if getattr(original, "_guarded", False):
        return
    sio.on("connect", wrap_connect(original, origin_refusal, auth_checks))
