"""Login for the chat: password hashes, the AUTH_USERS list, the auth secret.

Passwords are never stored: AUTH_USERS holds ``name:hash`` entries whose hash
is PBKDF2-HMAC-SHA256 in the form ``pbkdf2_sha256:<iterations>:<salt>:<digest>``
(salt and digest URL-safe base64, no padding). Make one with
``python -m core.persist hash-password``. The form has no ``$`` or ``,``
so it survives shells, .env files and docker compose unquoted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP 2023 guidance for PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 100_000
SALT_BYTES = 16
MIN_PASSWORD_CHARS = 12  # hash-password refuses shorter ones
SECRET_FILE = "auth-secret"
_USER_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(
    password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None
) -> str:
    """``pbkdf2_sha256:<iterations>:<salt>:<digest>`` for ``password``.

    A fresh random 16-byte salt is used unless ``salt`` is given (tests).
    """
    if not password:
        raise ValueError("the password must not be empty")
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"iterations must be >= {MIN_ITERATIONS}, got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}:{iterations}:{_b64(salt)}:{_b64(digest)}"


def check_hash(encoded: str) -> tuple[int, bytes, bytes]:
    """(iterations, salt, digest) of a stored hash; ValueError if malformed."""
    parts = encoded.split(":")
    if len(parts) != 4 or parts[0] != SCHEME:
        raise ValueError(
            f"expected '{SCHEME}:<iterations>:<salt>:<digest>', got {encoded[:24]!r}..."
        )
    try:
        iterations = int(parts[1])
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    except ValueError as exc:
        raise ValueError(f"malformed password hash: {exc}") from exc
    if iterations < MIN_ITERATIONS or len(digest) != 32 or not salt:
        raise ValueError(
            f"password hash needs >= {MIN_ITERATIONS} iterations, a salt and a "
            f"32-byte digest, got {iterations} iterations, {len(digest)} bytes"
        )
    return iterations, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time compare)."""
    iterations, salt, digest = check_hash(encoded)
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def check_user_name(name: str) -> str:
    """``name`` stripped; ValueError unless 1-64 chars of ``A-Za-z0-9_.@+-``."""
    name = name.strip()
    if not _USER_NAME.match(name):
        raise ValueError(
            f"user names are 1-64 characters of A-Za-z0-9_.@+-, got {name[:70]!r}"
        )
    return name


def parse_users(entries: tuple[str, ...] | list[str]) -> dict[str, str]:
    """AUTH_USERS entries ``name:hash`` -> {name: hash}.

    Raises ValueError naming the bad entry: a missing colon, a name with
    characters outside ``A-Za-z0-9_.@+-``, a duplicate, or a plain password
    where a hash belongs.
    """
    users: dict[str, str] = {}
    for entry in entries:
        name, sep, encoded = entry.partition(":")
        if not sep:
            raise ValueError(
                f"AUTH_USERS entries are 'name:{SCHEME}:...', got {entry[:40]!r}"
            )
        try:
            name = check_user_name(name)
        except ValueError as exc:
            raise ValueError(f"AUTH_USERS: {exc}") from exc
        if name in users:
            raise ValueError(f"AUTH_USERS names {name!r} twice")
        try:
            check_hash(encoded.strip())
        except ValueError as exc:
            raise ValueError(
                f"AUTH_USERS entry for {name!r}: {exc} (make one with "
                "`python -m core.persist hash-password`)"
            ) from exc
        users[name] = encoded.strip()
    return users


class PasswordChecker:
    """Checks logins against the configured users in about constant time."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = dict(users)
        # Unknown names still pay for one hash, so timing does not tell them.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._users))

    def check(self, name: str, password: str) -> bool:
        encoded = self._users.get(name.strip())
        matched = verify_password(password, encoded or self._decoy)
        if not (encoded and matched):
            logger.info("login refused for user %r", name[:64])
            return False
        return True


def ensure_auth_secret(data_dir: str | Path, given: str | None) -> str:
    """The JWT secret for Chainlit's login cookies.

    ``given`` (CHAINLIT_AUTH_SECRET) wins; otherwise the secret stored in
    ``data_dir/auth-secret`` (mode 0600), generated on first run, so logins
    survive restarts. Changing or deleting it logs everybody out.
    """
    if given:
        return given
    path = Path(data_dir) / SECRET_FILE
    if path.exists():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret) >= 32:
            return secret
        raise ValueError(
            f"{path} holds a secret of {len(secret)} characters, expected >= 32; "
            "delete the file to generate a new one (this logs everybody out)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    draft = path.with_name(f".{SECRET_FILE}-{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    try:
        os.link(draft, path)  # atomic, and fails if another process was first
    except FileExistsError:
        return ensure_auth_secret(data_dir, None)
    finally:
        draft.unlink()
    logger.info("generated a new auth secret in %s", path)
    return secret
