"""Install core.security on Chainlit 2.12's app and socket server.

``install_web_security(settings)`` runs once, when chainlit_app.py is imported
(after chainlit.server, before the app serves). What each guard closes:
docs/security.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.config import Settings
from core.security import private_data_dir
from core.security.bodylimit import BodyLimitMiddleware, upload_limits
from core.security.headers import RouteGuardMiddleware, SecurityHeadersMiddleware
from core.security.origins import OriginPolicy, add_trusted_hosts, restrict_cors
from core.security.readtimeout import ReadDeadlineMiddleware, install_header_deadline
from core.security.sessions import install_socket_guard, session_folder

logger = logging.getLogger(__name__)


def guard_session_folders() -> None:
    """Make Chainlit's ``files_dir`` refuse ids that leave the files root.

    Every create (``persist_file``) and remove (``delete``: rmtree) in Chainlit
    goes through ``BaseSession.files_dir``; a non-UUID id raises there instead.
    """
    from chainlit.session import BaseSession

    if getattr(BaseSession.files_dir.fget, "_guarded", False):
        return

    def files_dir(session: Any) -> Path:
        from chainlit.config import FILES_DIRECTORY

        return session_folder(Path(FILES_DIRECTORY), session.id)

    files_dir._guarded = True  # type: ignore[attr-defined]
    BaseSession.files_dir = property(files_dir)  # type: ignore[assignment]


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
    limits = upload_limits(settings.max_upload_mb)
    app.add_middleware(BodyLimitMiddleware, limit_for=limits)
    app.add_middleware(  # outside the body limit: its 413 drain is timed too
        ReadDeadlineMiddleware,
        timeout_s=settings.read_timeout_s,
        min_rate_kb=settings.read_min_rate_kb,
    )
    install_header_deadline(settings.read_timeout_s)  # uvicorn starts after us
    add_trusted_hosts(app, settings.allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    private_data_dir(settings.data_dir)
    logger.info(
        "web security: hosts %s, extra origins %s, bodies <= %d MB, reads within %g s",
        ",".join(settings.allowed_hosts),
        ",".join(settings.allowed_origins) or "none",
        settings.max_upload_mb,
        settings.read_timeout_s,
    )
