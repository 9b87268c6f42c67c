"""API access: bearer-key check (constant time) and a per-client rate limit.

The rate limit uses the ``limits`` library (moving window, in memory): one
process serves the chat and the API, so per-process state is the whole state.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from core.errors import RateLimitedError, UnauthorizedError

logger = logging.getLogger(__name__)

TOKENS_PER_HIT = 256  # a token budget counts one rate-limit hit per 256 tokens


def work_cost(images: int, max_new_tokens: int | None = None) -> int:
    """Rate-limit hits of a request: one per image, times one per started
    TOKENS_PER_HIT of the requested token budget (None: sized, one)."""
    per_image = max(1, math.ceil((max_new_tokens or 0) / TOKENS_PER_HIT))
    return max(1, images) * per_image


def check_api_key(authorization: str | None, api_key: str | None) -> str | None:
    """The client identity for a valid ``Authorization: Bearer <key>`` header.

    Returns None when no key is configured (the API is open), else a short
    non-secret id of the key. Raises UnauthorizedError otherwise; the
    comparison takes the same time whatever the prefix that matches.
    """
    if not api_key:
        return None
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(
            "This API needs an API key: send the header 'Authorization: Bearer <key>'."
        )
    if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
        raise UnauthorizedError("The API key is not valid.")
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


class RateLimiter:
    """``per_minute`` requests per client in any 60 s window; 0 disables it."""

    def __init__(self, per_minute: int) -> None:
        if per_minute < 0:
            raise ValueError(f"RATE_LIMIT must be >= 0, got {per_minute}")
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(max(1, per_minute))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, client_id: str, cost: int = 1) -> None:
        """Count ``cost`` units of work of ``client_id`` (one image, one token
        budget); RateLimitedError past the limit, counting nothing then."""
        self.check_cost(cost)
        if self.per_minute == 0:
            return
        if self._limiter.hit(self._item, client_id, cost=cost):
            return
        stats = self._limiter.get_window_stats(self._item, client_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        logger.info("rate limited %s for %d s", client_id, retry_after)
        raise RateLimitedError(
            f"Too many requests: the limit is {self.per_minute} per minute "
            f"(RATE_LIMIT). Try again in {retry_after} s.",
            retry_after_s=retry_after,
        )

    def check_cost(self, cost: int) -> None:
        """RateLimitedError when ``cost`` alone is over the limit: such work
        would never be admitted, so say what to change instead of "wait"."""
        if 0 < self.per_minute < cost:
            raise RateLimitedError(
                f"This request counts {cost} toward the rate limit (one per image "
                f"and tile, and per {TOKENS_PER_HIT} tokens of its budget), more "
                f"than the {self.per_minute} per minute allowed (RATE_LIMIT): send "
                "fewer images, ask for fewer tiles or fewer new tokens.",
                retry_after_s=60,
            )
