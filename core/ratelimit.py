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

    def hit(self, client_id: str) -> None:
        """Count a request of ``client_id``; RateLimitedError past the limit."""
        if self.per_minute == 0:
            return
        if self._limiter.hit(self._item, client_id):
            return
        stats = self._limiter.get_window_stats(self._item, client_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        logger.info("rate limited %s for %d s", client_id, retry_after)
        raise RateLimitedError(
            f"Too many requests: the limit is {self.per_minute} per minute "
            f"(RATE_LIMIT). Try again in {retry_after} s.",
            retry_after_s=retry_after,
        )
