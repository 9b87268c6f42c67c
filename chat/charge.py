"""What chat work costs against the one RATE_LIMIT (core.service), charged in
one place: uploads and replayed answers here; model runs in
chat.analysis.prepare (core.service.Services.prepare)."""

from __future__ import annotations

import chainlit as cl

from chat.services import ChatServices
from chat.session import client_key


def charge(services: ChatServices, images: int) -> None:
    """Count work on ``images`` kept photos (an upload, a replayed answer)
    against the one rate limiter (RateLimitedError past it), for the
    logged-in user or else the client's address (core.service.client_id)."""
    key = client_key(cl.context.session, services.settings.forwarded_allow_ips)
    services.service.admit(key, images)
