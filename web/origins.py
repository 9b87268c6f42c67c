"""Which browser origins and Host names may talk to the server.

- CORS: Chainlit 2.12 adds ``CORSMiddleware(allow_origins=config.allow_origins,
  allow_credentials=True)``; with the default ``["*"]`` Starlette echoes any
  Origin with credentials. Here its origins become ``ALLOWED_ORIGINS`` (never
  ``*``); same-origin requests need no CORS at all.
- WebSocket: browsers send cross-site WebSocket handshakes with the visitor's
  cookies and no CORS check, and Chainlit's socket.io server checks no Origin.
  A socket whose Origin is neither the server itself nor in ALLOWED_ORIGINS is
  refused.
- Host: ``ALLOWED_HOSTS`` via Starlette's TrustedHostMiddleware, so a DNS
  rebinding page (evil.example resolving to 127.0.0.1) gets a 400.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OriginPolicy:
    """``allowed_origins``: extra ``scheme://host[:port]`` origins besides the
    server's own; ``allowed_hosts``: Host header names (``*.x`` patterns, ``*``)."""

    allowed_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]

    def same_origin(self, origin: str, environ: dict) -> bool:
        """``origin`` names the host (and port) the client used to reach this
        server, over http or https (a TLS proxy in front changes the scheme)."""
        host = environ.get("HTTP_HOST", "").lower()
        return bool(host) and origin.lower() in (f"http://{host}", f"https://{host}")

    def socket_refusal(self, environ: dict) -> str | None:
        """Why a socket handshake is refused, or None. No Origin header (not a
        browser) passes: only browsers carry a visitor's cookies."""
        origin = environ.get("HTTP_ORIGIN")
        if not origin:
            return None
        origin = origin.rstrip("/")
        if self.same_origin(origin, environ) or origin in self.allowed_origins:
            return None
        return (
            f"the origin {origin} is not this server; add it to ALLOWED_ORIGINS "
            "to let pages there use the chat"
        )


def restrict_cors(app: Any, allowed_origins: tuple[str, ...]) -> None:
    """Point Chainlit's CORSMiddleware at ``allowed_origins`` (never ``*``)."""
    found = False
    for middleware in app.user_middleware:
        if middleware.cls is CORSMiddleware:
            middleware.kwargs["allow_origins"] = list(allowed_origins)
            found = True
    if not found:  # a Chainlit without its own CORS: keep it credential-free
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(allowed_origins),
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
        )


def add_trusted_hosts(app: Any, allowed_hosts: tuple[str, ...]) -> None:
    """Refuse requests and sockets whose Host is not in ``allowed_hosts`` (400)."""
    app.add_middleware(
        TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False
    )
