"""Security checks without a web framework: session and thread ids, client
addresses, login tokens, markdown escaping and redaction. The ASGI middlewares
and the origin/host policy that apply them are in web/; chat.security installs
both on Chainlit's app and socket server. See docs/security.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.security.markdown import code_block_safe, escape_markdown, inline_code
from core.security.redact import redact, shown_model_id
from core.security.sessions import is_canonical_uuid

__all__ = [
    "code_block_safe",
    "escape_markdown",
    "inline_code",
    "is_canonical_uuid",
    "private_data_dir",
    "redact",
    "shown_model_id",
]

OWNER_ONLY_UMASK = 0o077  # files rw-------, folders rwx------


def private_data_dir(data_dir: str) -> None:
    """New files owner-only from now on; DATA_DIR itself rwx------."""
    os.umask(OWNER_ONLY_UMASK)
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
