"""Thread ids: one spelling of each, checked at every door.

``uuid.UUID`` reads one id from many spellings (upper case, ``{...}``,
``urn:uuid:``, no hyphens), while Chainlit's ownership check and the history
database compare the id as a plain string (SQLite) or read some spellings and
not others (PostgreSQL). A folder keyed on the folded id but an ownership
check on the raw string let one user reach another's thread by re-spelling
its id. So every thread id that enters (socket auth, chat messages, the
``/project/thread*`` and ``/project/share`` routes, resume, the thread folder)
must already be the canonical form ``str(uuid.UUID(x))``; nothing is folded.
Framework-free: web.threads applies ``route_thread_refusal`` to HTTP routes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from core.security.sessions import is_canonical_uuid

logger = logging.getLogger(__name__)

THREAD_ID_HINT = (
    "thread ids are lowercase hyphenated UUIDs "
    "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), spelled as the server gave them"
)
# GET /project/thread/{id}[/element/{element id}], GET /project/share/{id}
_PATH_ID = re.compile(r"^/project/(?:thread|share)/([^/]+)")
# Routes whose JSON body names a thread: rename, delete, share, elements, feedback.
BODY_PATHS = frozenset(
    {"/project/thread", "/project/thread/share", "/project/element", "/feedback"}
)


def canonical_thread_id(value: object) -> str:
    """``value`` itself when it is exactly ``str(uuid.UUID(value))``.

    Raises ValueError (with the expected form) for anything else, including
    other spellings of a valid UUID: they are refused, never folded.
    """
    if not is_canonical_uuid(value):
        raise ValueError(f"thread id {str(value)[:80]!r} refused: {THREAD_ID_HINT}")
    return value  # type: ignore[return-value]  # is_canonical_uuid: a str


def _named(value: object) -> bool:
    """The browser sends ``""`` (or nothing) for "no thread yet"."""
    return value not in (None, "")


def thread_id_refusal(auth: object) -> str | None:
    """Why a socket ``auth`` payload's ``threadId`` is refused, or None."""
    value = auth.get("threadId") if isinstance(auth, dict) else None
    if _named(value) and not is_canonical_uuid(value):
        return f"threadId {str(value)[:80]!r} refused: {THREAD_ID_HINT}"
    return None


def message_thread_refusal(payload: object, session_thread: str | None) -> str | None:
    """Why a ``client_message``/``edit_message`` payload is refused, or None.

    Its ``message.threadId`` may be empty (what the browser sends); otherwise
    it must be the canonical id of the socket's own thread.
    """
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, dict):
        return "the payload must carry a message object"
    value = message.get("threadId")
    if not _named(value):
        return None
    if not is_canonical_uuid(value):
        return f"message threadId {str(value)[:80]!r} refused: {THREAD_ID_HINT}"
    if value != session_thread:
        return "message threadId is not the thread this socket opened"
    return None


Handler = Callable[[str, Any], Awaitable[Any]]


def wrap_message(original: Handler, thread_of: Callable[[str], str | None]) -> Handler:
    """A socket message handler that drops payloads naming another thread id."""

    async def handler(sid: str, payload: Any) -> Any:
        reason = message_thread_refusal(payload, thread_of(sid))
        if reason is not None:
            logger.warning("dropped a socket message of %s: %s", sid, reason)
            return None
        return await original(sid, payload)

    handler._guarded = True  # type: ignore[attr-defined]
    return handler


def body_thread_ids(body: bytes) -> list[object]:
    """Every ``threadId`` of a JSON object body, top level or one level down
    (``{"element": {"threadId": ...}}``, ``{"feedback": {...}}``)."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return []  # not JSON: Chainlit's own validation answers 422
    if not isinstance(data, dict):
        return []
    found = [data["threadId"]] if "threadId" in data else []
    for value in data.values():
        if isinstance(value, dict) and "threadId" in value:
            found.append(value["threadId"])
    return found


def route_thread_refusal(path: str, body_ids: list[object]) -> str | None:
    """Why a request naming thread ids (in its path or JSON body) is refused;
    an empty or null ``threadId`` in a body names none (Chainlit's own)."""
    match = _PATH_ID.match(path)
    named = [match.group(1)] if match and path not in BODY_PATHS else []
    for value in named + [v for v in body_ids if _named(v)]:  # "": no thread
        if not is_canonical_uuid(value):
            return f"thread id {str(value)[:80]!r} refused: {THREAD_ID_HINT}."
    return None
