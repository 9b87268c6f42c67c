"""Persisted chat history and login, wired from Settings.

Login is on whenever AUTH_USERS is set, whatever PERSIST says (see
chat.persist.login: revocable, rate limited). History is on when users are
configured (AUTH_USERS, PERSIST=auto) or PERSIST=on:
- Chainlit's SQLAlchemy data layer on ``DATA_DIR/chat.db`` (SQLite, tables
  created on first start) or on DATABASE_URL (SQLite or PostgreSQL), built
  from this switch by chat.persist.history;
- element files (photos, overlays, downloads) in ``DATA_DIR/files`` behind
  Chainlit's storage interface, served by signed URLs (chat.persist.storage);
- each thread's working images and chat state in ``DATA_DIR/threads/<id>/``
  (``state.json``: images, active image, turns with intents and raw answers,
  options, a request waiting for its photo), removed with the thread; the
  chat writes it ahead of each answer and a resume checks the folder against
  it (core.persist.recovery);
- password login against AUTH_USERS hashes, JWT secret CHAINLIT_AUTH_SECRET or
  one generated into ``DATA_DIR/auth-secret``.
Off, the chat works as without this module: no login, images in Chainlit's
session folder.

Make a password hash: ``python -m core.persist hash-password alice``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.conversation import Conversation, intent_from_dict, intent_to_dict
from core.persist.auth import (
    MIN_PASSWORD_CHARS,
    PasswordChecker,
    check_user_name,
    ensure_auth_secret,
    hash_password,
    parse_users,
)
from core.persist.locations import async_database_url, thread_folder
from core.persist.recovery import (
    photo_on_disk,
    read_state_file,
    recover_photos,
    write_durably,
)
from core.security.auth import SessionTokens
from core.types import Intent

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


@dataclass
class ChatState:
    """What a resumed chat needs besides its messages."""

    conversation: Conversation
    options: dict[str, Any]
    pending: Intent | None = None
    # What a resumed chat could not bring back, said to the user (load_state).
    problems: tuple[str, ...] = ()


@dataclass
class Persistence:
    """The persistence switch and its parts; build with ``from_settings``."""

    enabled: bool
    data_dir: Path
    database_url: str = ""
    auth_secret: str = ""
    users: dict[str, str] = field(default_factory=dict)
    write_timeout_s: float = 5.0  # HISTORY_WRITE_TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> Persistence:
        """Decide on/off and check AUTH_USERS; generates the auth secret when on.

        Raises ValueError naming the setting that is wrong.
        """
        data_dir = Path(settings.data_dir).expanduser()
        users = parse_users(settings.auth_users)
        enabled = settings.persist == "on" or (settings.persist == "auto" and users)
        if not enabled:
            if settings.database_url:
                logger.warning("DATABASE_URL is ignored: set AUTH_USERS to persist")
            if users:  # PERSIST=off: login without history
                secret = ensure_auth_secret(data_dir, settings.auth_secret)
                return cls(False, data_dir, auth_secret=secret, users=users)
            return cls(False, data_dir)
        if not users:
            raise ValueError(
                "PERSIST=on needs AUTH_USERS (name:hash entries; make a hash with "
                "`python -m core.persist hash-password <name>`): chat history "
                "is kept per logged-in user"
            )
        return cls(
            True,
            data_dir,
            async_database_url(settings.database_url, data_dir),
            ensure_auth_secret(data_dir, settings.auth_secret),
            users,
            settings.history_write_timeout_s,
        )

    @property
    def login(self) -> bool:
        """Chainlit's password login is on (AUTH_USERS set), history or not."""
        return bool(self.users)

    def session_tokens(self, lifetime_s: float) -> SessionTokens:
        """The checker of login tokens for these users (login must be on)."""
        return SessionTokens(self.users, self.auth_secret, lifetime_s)

    @property
    def threads_root(self) -> Path:
        return self.data_dir / "threads"

    @property
    def files_root(self) -> Path:
        return self.data_dir / "files"

    def checker(self) -> PasswordChecker:
        return PasswordChecker(self.users)

    def thread_folder(self, thread_id: str) -> Path:
        """Where one thread's images and state live (not created here)."""
        return thread_folder(self.threads_root, thread_id)

    def state_data(self, thread_id: str, state: ChatState) -> dict[str, Any]:
        """``state`` as the JSON-safe value ``state.json`` holds (image paths
        relative to the thread folder). Cheap: take it on the event loop, where
        the conversation changes, and write it elsewhere (``write_state``)."""
        folder = self.thread_folder(thread_id)
        snapshot = state.conversation.to_dict()
        for image in snapshot["images"]:
            path = Path(image["path"])
            if path.is_relative_to(folder):
                image["path"] = str(path.relative_to(folder))
        return {
            "conversation": snapshot,
            "options": state.options,
            "pending": intent_to_dict(state.pending) if state.pending else None,
        }

    def write_state(self, thread_id: str, data: dict[str, Any]) -> Path:
        """Replace ``state.json`` with ``data``: atomic and fsynced, so a crash
        leaves the previous state or this one (core.persist.recovery)."""
        folder = self.thread_folder(thread_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / STATE_FILE
        write_durably(target, json.dumps(data))
        return target

    def save_state(self, thread_id: str, state: ChatState) -> Path:
        """``write_state(state_data(...))`` in one call."""
        return self.write_state(thread_id, self.state_data(thread_id, state))

    def load_state(
        self,
        thread_id: str,
        default_options: dict[str, Any],
        upload_names: Callable[[], Mapping[str, str]] | None = None,
    ) -> ChatState:
        """The saved state of a thread, checked against its folder.

        Never raises on a partial, old or hand-edited ``state.json``: each part
        (conversation, options, pending request) that cannot be read is reset
        and named in ``ChatState.problems``; images whose files are gone are
        dropped with their turns and named there too. Originals the state does
        not know (a crash before the save) are restored or named as lost
        (core.persist.recovery; ``upload_names`` gives sha256 -> name of the
        uploads in the history, called only then). No ``state.json``: a fresh
        chat plus what was found.
        """
        folder = self.thread_folder(thread_id)
        target = folder / STATE_FILE
        problems: list[str] = []
        data = read_state_file(target, problems)
        conversation = _conversation_from(data.get("conversation"), folder, problems)
        for record in conversation.drop_missing(photo_on_disk):
            logger.warning("thread %s: image %s is gone", thread_id, record.path)
            problems.append(f"the photo {record.name} is gone")
        problems += recover_photos(folder, conversation, upload_names or dict)
        options = _options_from(data.get("options"), default_options, problems)
        pending = data.get("pending")
        if pending is not None:
            try:
                pending = intent_from_dict(pending)
            except _SNAPSHOT_ERRORS as exc:
                problems.append(f"the request waiting for a photo ({exc})")
                pending = None
        if problems:
            logger.warning("thread %s: not restored: %s", thread_id, problems)
        return ChatState(conversation, options, pending, tuple(problems))


# What reading a hand-edited snapshot can raise (wrong types, missing keys).
_SNAPSHOT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def _conversation_from(
    snapshot: Any, folder: Path, problems: list[str]
) -> Conversation:
    """The saved photos and turns, or an empty conversation (reason appended)."""
    if snapshot is None:
        problems.append("the photos and turns (none were saved)")
        return Conversation()
    images = snapshot.get("images") if isinstance(snapshot, dict) else None
    for image in images if isinstance(images, list) else ():
        if isinstance(image, dict) and isinstance(image.get("path"), str):
            image["path"] = str(folder / image["path"])  # absolute paths stay
    try:
        return Conversation.from_dict(snapshot)
    except _SNAPSHOT_ERRORS as exc:
        problems.append(f"the photos and turns ({exc})")
        return Conversation()


def _options_from(
    saved: Any, defaults: dict[str, Any], problems: list[str]
) -> dict[str, Any]:
    """Saved options over ``defaults``; unknown keys and values of another type
    than the default's are dropped (named in ``problems``)."""
    if saved is None:
        return dict(defaults)
    if not isinstance(saved, dict):
        problems.append(f"the settings (expected an object, got {saved!r:.60})")
        return dict(defaults)
    options = dict(defaults)
    for key, value in saved.items():
        default = defaults.get(key)
        if key not in defaults or not _same_kind(value, default):
            problems.append(f"the setting {key!r} ({value!r:.60})")
            continue
        options[key] = value
    return options


def _same_kind(value: Any, default: Any) -> bool:
    """True when ``value`` can stand in for ``default`` (bool is not a number)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def main(argv: list[str] | None = None) -> int:
    """``python -m core.persist hash-password [NAME]``: print an AUTH_USERS
    entry (``NAME:hash``, or the bare hash without NAME). The password is read
    without echo, twice, or from stdin when it is not a terminal; passwords
    under MIN_PASSWORD_CHARS characters are refused."""
    parser = argparse.ArgumentParser(prog="python -m core.persist")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("hash-password", help="make an AUTH_USERS entry")
    make.add_argument("name", nargs="?", help="user name to prefix the hash with")
    args = parser.parse_args(argv)
    try:
        name = check_user_name(args.name) if args.name is not None else None
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            sys.stderr.write("The passwords differ; nothing written.\n")
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < MIN_PASSWORD_CHARS:
        sys.stderr.write(
            f"Passwords need at least {MIN_PASSWORD_CHARS} characters, got "
            f"{len(password)}; a few words make a long one easy to remember. "
            "Nothing written.\n"
        )
        return 2
    try:
        encoded = hash_password(password)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(f"{name}:{encoded}\n" if name else f"{encoded}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
