"""What chat work costs against the chat's RATE_LIMIT, charged in one place."""

from __future__ import annotations

import chainlit as cl

from chat.options import current_options
from chat.services import ChatServices
from chat.session import client_key
from core.pipeline import token_budget
from core.ratelimit import work_cost
from core.types import Intent


def charge(services: ChatServices, images: int, intent: Intent | None = None) -> None:
    """Count this work against the chat's rate limit (RateLimitedError past it):
    one hit per image and per TOKENS_PER_HIT of the token budget, for the
    logged-in user or else the client's address, not the client-chosen
    session id."""
    budget = None
    if intent is not None:
        budget = (
            current_options().max_new_tokens
            or services.settings.max_new_tokens
            or token_budget(intent)
        )
    key = client_key(cl.context.session, services.settings.forwarded_allow_ips)
    services.limiter.hit(key, work_cost(images, budget))
