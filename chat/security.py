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
from core.security import private_data_dir, redact
from core.security.clients import pin_uvicorn_proxy_trust
from core.security.sessions import install_socket_guard, session_folder
from core.security.threads import thread_id_refusal, wrap_message
from core.video.clip import VIDEO_MIME_TYPES
from web.bodylimit import BodyLimitMiddleware, upload_limits
from web.headers import RouteGuardMiddleware, SecurityHeadersMiddleware
from web.origins import OriginPolicy, add_trusted_hosts, restrict_cors
from web.readtimeout import ReadDeadlineMiddleware, install_header_deadline
from web.threads import ThreadIdMiddleware

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


def guard_message_threads(sio: Any) -> None:
    """Drop chat messages whose ``threadId`` is not this socket's own thread
    (a re-spelled id included). Chainlit ignores that field today; the guard
    keeps a future use of it from opening another user's thread."""
    from chainlit.session import WebsocketSession

    def thread_of(sid: str) -> str | None:
        session = WebsocketSession.get(sid)
        return session.thread_id if session else None

    handlers = sio.handlers.get("/", {})
    for event in ("client_message", "edit_message"):
        original = handlers.get(event)
        if original is not None and not getattr(original, "_guarded", False):
            sio.on(event, wrap_message(original, thread_of))


REDACTED_FIELDS = ("output", "input")  # a step's texts the browser shows


def redacted_step(step_dict: Any) -> Any:
    """``step_dict`` with its texts redacted (core.security.redact)."""
    if not isinstance(step_dict, dict):
        return step_dict
    texts = {
        key: redact(step_dict[key])
        for key in REDACTED_FIELDS
        if isinstance(step_dict.get(key), str)
    }
    return {**step_dict, **texts}


def install_outbound_filter() -> None:
    """The chat's one door: every message and step Chainlit sends (new, updated,
    a resumed thread's, its own error messages) passes ``redact`` on its way
    to the browser, wherever in the chat it was written."""
    from chainlit.emitter import ChainlitEmitter

    if getattr(ChainlitEmitter.send_step, "_redacting", False):
        return
    send_step, update_step = ChainlitEmitter.send_step, ChainlitEmitter.update_step
    resume_thread = ChainlitEmitter.resume_thread

    def send(self: Any, step_dict: Any) -> Any:
        return send_step(self, redacted_step(step_dict))

    def update(self: Any, step_dict: Any) -> Any:
        return update_step(self, redacted_step(step_dict))

    def resume(self: Any, thread: Any) -> Any:
        steps = [redacted_step(step) for step in thread.get("steps") or []]
        return resume_thread(self, {**thread, "steps": steps})

    send._redacting = True  # type: ignore[attr-defined]
    ChainlitEmitter.send_step = send  # type: ignore[method-assign]
    ChainlitEmitter.update_step = update  # type: ignore[method-assign]
    ChainlitEmitter.resume_thread = resume  # type: ignore[method-assign]


def install_web_security(settings: Settings) -> None:
    """Guards on Chainlit's app and socket server; call before it serves."""
    from chainlit.config import config
    from chainlit.server import app, sio

    pin_uvicorn_proxy_trust(settings.forwarded_allow_ips)  # before uvicorn.Config
    policy = OriginPolicy(settings.allowed_origins, settings.allowed_hosts)
    guard_session_folders()
    install_outbound_filter()
    install_socket_guard(sio, policy.socket_refusal, (thread_id_refusal,))
    guard_message_threads(sio)
    config.project.allow_origins = list(settings.allowed_origins)
    restrict_cors(app, settings.allowed_origins)
    uploads = config.features.spontaneous_file_upload
    if uploads is not None:  # the browser shows and checks the same limits
        uploads.max_size_mb = max(settings.max_upload_mb, settings.video_max_mb)
        uploads.max_files = settings.max_files_per_message
        accept = uploads.accept if isinstance(uploads.accept, list) else None
        if accept is not None:  # clips (core.video), each checked on arrival
            uploads.accept = [
                *accept,
                *(m for m in VIDEO_MIME_TYPES if m not in accept),
            ]
    # add_middleware puts each one outside the previous: headers outermost.
    app.add_middleware(
        RouteGuardMiddleware,
        sharing_enabled=lambda: bool(config.features.allow_thread_sharing),
    )
    app.add_middleware(ThreadIdMiddleware)  # reads bodies: inside their limit
    limits = upload_limits(settings.max_upload_mb, settings.video_max_mb)
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
