"""What chat work costs against the one RATE_LIMIT (core.service), charged in
one place: uploads and replayed answers here; model runs in
chat.analysis.prepare (core.service.Services.prepare)."""

from __future__ import annotations

import chainlit as cl

from chat.services import ChatServices
from chat.session import client_key
from chat.uploads import quota_refusal
from core.errors import AppError


def charge(services: ChatServices, images: int) -> None:
    """Count work on ``images`` kept photos (an upload, a replayed answer)
    against the one rate limiter (RateLimitedError past it), for the
    logged-in user or else the client's address (core.service.client_id)."""
    key = client_key(cl.context.session, services.settings.forwarded_allow_ips)
    services.service.admit(key, images)


async def upload_refusal(services: ChatServices) -> str | None:
    """Why the next upload (photo or clip) is not kept (quota, rate limit), or
    None; a kept upload takes one hit of the rate limit here, before decoding."""
    refusal = await quota_refusal(services.settings)
    if refusal is not None:
        return refusal
    try:
        charge(services, 1)
    except AppError as exc:
        return exc.message
    return None
