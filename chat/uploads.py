"""What a chat upload may cost, checked before it is decoded.

Each upload counts one hit of the chat's RATE_LIMIT (``chat.charge``). An
anonymous session (no login) keeps at most UPLOADS_PER_SESSION_MAX photos,
and while Chainlit's files folder (every session's uploads and photo copies)
holds more than UPLOADS_TOTAL_MB, anonymous uploads are refused. A refused
upload loses nothing: the session's photos stay and answer as before.

Chainlit removes a session's folder when the session is cleared or an hour
(``session_timeout``) after its socket went away, but only in the process
that served it: folders left by a restart stay. ``sweep_abandoned`` removes
session folders that no live session uses and that nothing touched for that
long; it runs at start and then every SWEEP_EVERY_S.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import chainlit as cl

from core.config import MB, Settings
from core.security import escape_markdown
from core.security.sessions import is_canonical_uuid

logger = logging.getLogger(__name__)

KEPT_KEY = "uploads_kept"  # user_session: uploads this session kept
SWEEP_EVERY_S = 600.0
NOTHING_LOST = (
    "Nothing is lost: the photos you sent before are still here and answer as before."
)


def tree_stats(folder: Path) -> tuple[int, float]:
    """(bytes of every file under ``folder``, newest mtime of it or its files);
    (0, 0.0) when it is gone. Files that vanish meanwhile are skipped."""
    total, newest = 0, 0.0
    for parent, _, names in os.walk(folder):
        for name in [".", *names]:
            try:
                stat = os.stat(os.path.join(parent, name))
            except OSError:
                continue
            total += stat.st_size if name != "." else 0
            newest = max(newest, stat.st_mtime)
    return total, newest


def sweep_abandoned(
    files_root: Path,
    in_use: Callable[[str], bool],
    older_than_s: float,
    now: float | None = None,
) -> list[Path]:
    """Remove the session folders under ``files_root`` (named by a canonical
    UUID) that ``in_use`` says no live session owns and whose newest file is
    older than ``older_than_s``. Returns the folders removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        children = list(files_root.iterdir())
    except OSError:
        return removed
    for folder in children:
        if not is_canonical_uuid(folder.name) or in_use(folder.name):
            continue
        if folder.is_symlink() or not folder.is_dir():
            continue
        if tree_stats(folder)[1] > now - older_than_s:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        logger.info("removed %d abandoned chat session folder(s)", len(removed))
    return removed


def live_session(session_id: str) -> bool:
    """Whether a Chainlit socket session (connected, or waiting for its
    socket to come back) owns this id."""
    from chainlit.session import WebsocketSession

    return WebsocketSession.get_by_id(session_id) is not None


def files_root() -> Path:
    from chainlit.config import FILES_DIRECTORY

    return Path(FILES_DIRECTORY)


def session_timeout_s() -> float:
    from chainlit.config import config

    return float(config.project.session_timeout)


async def sweep_forever(every_s: float = SWEEP_EVERY_S) -> None:
    """``sweep_abandoned`` on Chainlit's files folder now and every ``every_s``."""
    while True:
        try:
            await asyncio.to_thread(
                sweep_abandoned, files_root(), live_session, session_timeout_s()
            )
        except Exception:  # a failed sweep must not stop the next one
            logger.exception("could not sweep abandoned chat session folders")
        await asyncio.sleep(every_s)  # a timer: the sweep's period


_SWEEPER: set[asyncio.Task] = set()  # the running sweep, kept referenced


def start_sweeping() -> None:
    """Start ``sweep_forever`` once per process (call from the app's startup)."""
    if not _SWEEPER:
        task = asyncio.create_task(sweep_forever())
        _SWEEPER.add(task)
        task.add_done_callback(_SWEEPER.discard)


async def quota_refusal(settings: Settings) -> str | None:
    """Why this session may not keep one more upload (None: it may).

    Logged-in users are not held to these quotas (RATE_LIMIT still counts).
    """
    if getattr(cl.context.session, "user", None) is not None:
        return None
    most = settings.uploads_per_session_max
    kept = cl.user_session.get(KEPT_KEY) or 0
    if most and kept >= most:
        return (
            f"this chat already keeps {kept} photos, the most one chat may keep "
            "(UPLOADS_PER_SESSION_MAX); start a new chat for other photos"
        )
    limit_mb = settings.uploads_total_mb
    if limit_mb and await asyncio.to_thread(_over, limit_mb):
        return (
            f"the server's space for chat photos is full (UPLOADS_TOTAL_MB = "
            f"{limit_mb} MB); try again later"
        )
    return None


def _over(limit_mb: int) -> bool:
    """Chainlit's files folder over ``limit_mb``, even after a sweep."""
    root = files_root()
    if tree_stats(root)[0] <= limit_mb * MB:
        return False
    sweep_abandoned(root, live_session, session_timeout_s())
    used = tree_stats(root)[0]
    if used > limit_mb * MB:
        logger.warning(
            "chat uploads refused: %.1f MB kept, UPLOADS_TOTAL_MB is %d",
            used / MB,
            limit_mb,
        )
        return True
    return False


def count_kept() -> None:
    """One more upload kept by this session (``quota_refusal`` counts them)."""
    cl.user_session.set(KEPT_KEY, (cl.user_session.get(KEPT_KEY) or 0) + 1)


def drop_refused(paths: list[str]) -> None:
    """Remove Chainlit's copies of refused uploads in this session's folder
    (anything elsewhere is left alone)."""
    folder = Path(cl.context.session.files_dir).resolve()
    for path in paths:
        target = Path(path).resolve()
        if target.parent == folder and target.is_file():
            target.unlink(missing_ok=True)


def refusal_text(refused: list[str], kept: list[str], reason: str) -> str:
    """The chat message for uploads not kept (names escaped: users chose them)."""
    names = ", ".join(f"**{escape_markdown(name)}**" for name in refused)
    text = f"Not kept: {names}: {escape_markdown(reason.rstrip('.'))}. {NOTHING_LOST}"
    if kept:
        text += f" Kept from this message: {', '.join(map(escape_markdown, kept))}."
    return text


def free_name(folder: Path, number: int) -> Path:
    """``NNN.jpg``, the display copy's name (chat.photos), not yet taken."""
    while any(  # a resumed thread's older ones (.png before display copies)
        (folder / f"{number:03d}{suffix}").exists()
        for suffix in (".jpg", ".png", ".orig")  # .orig: written first
    ):
        number += 1
    return folder / f"{number:03d}.jpg"
