"""Web security around Chainlit 2.12: what the framework leaves open, closed here.

``install_web_security(settings)`` runs once, when chainlit_app.py is imported
(after chainlit.server, before the app serves). See docs/security.md.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from core.config import Settings
from core.security.bodylimit import BodyLimitMiddleware, upload_limits
from core.security.headers import RouteGuardMiddleware, SecurityHeadersMiddleware
from core.security.markdown import code_block_safe, escape_markdown, inline_code
from core.security.origins import OriginPolicy, add_trusted_hosts, restrict_cors
from core.security.redact import redact
from core.security.sessions import (
    guard_session_folders,
    install_socket_guard,
    is_canonical_uuid,
)

__all__ = [
    "code_block_safe",
    "escape_markdown",
    "inline_code",
    "install_web_security",
    "is_canonical_uuid",
    "private_data_dir",
    "redact",
]

logger = logging.getLogger(__name__)

OWNER_ONLY_UMASK = 0o077  # files rw-------, folders rwx------


def private_data_dir(data_dir: str) -> None:
    """New files owner-only from now on; DATA_DIR itself rwx------."""
    os.umask(OWNER_ONLY_UMASK)
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)


def install_web_security(settings: Settings) -> None:
    """Guards on Chainlit's app and socket server; call before it serves."""
    from chainlit.config import config
    from chainlit.server import app, sio

    policy = OriginPolicy(settings.allowed_origins, settings.allowed_hosts)
    guard_session_folders()
    install_socket_guard(sio, policy.socket_refusal)
    config.project.allow_origins = list(settings.allowed_origins)
    restrict_cors(app, settings.allowed_origins)
    uploads = config.features.spontaneous_file_upload
    if uploads is not None:  # the browser shows and checks the same limits
        uploads.max_size_mb = settings.max_upload_mb
        uploads.max_files = settings.max_files_per_message
    # add_middleware puts each one outside the previous: headers outermost.
    app.add_middleware(
        RouteGuardMiddleware,
        sharing_enabled=lambda: bool(config.features.allow_thread_sharing),
    )
    app.add_middleware(
        BodyLimitMiddleware, limit_for=upload_limits(settings.max_upload_mb)
    )
    add_trusted_hosts(app, settings.allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    private_data_dir(settings.data_dir)
    logger.info(
        "web security: hosts %s, extra origins %s, bodies <= %d MB",
        ",".join(settings.allowed_hosts),
        ",".join(settings.allowed_origins) or "none",
        settings.max_upload_mb,
    )
