"""core/ratelimit.py on a controlled clock: what a request costs, when work
that can never fit is refused, the exact Retry-After and the exact messages
(key phrases of the API key check are in test_api_guards.py)."""

from __future__ import annotations

import time

import pytest

from core.errors import RateLimitedError, UnauthorizedError
from core.ratelimit import RateLimiter, check_api_key, work_cost


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """time.time() for this module and the ``limits`` storage: set clock[0]."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


@pytest.mark.parametrize(
    ("images", "tokens", "cost"),
    [
        (0, None, 1),  # case: no image (a chat turn on text) still counts one
        (1, 0, 1),  # case: a zero budget counts like a sized one
        (1, 1, 1),  # case: one token is a started block
        (1, 255, 1),  # case: under one block
        (1, 512, 2),  # case: exactly two blocks
        (1, 513, 3),  # case: a third block started
        (3, 256, 3),  # case: three images of one block
        (3, 257, 6),  # case: three images of two blocks each
    ],
)
def test_work_cost(images: int, tokens: int | None, cost: int) -> None:
    assert work_cost(images, tokens) == cost


def test_hits_count_their_cost(clock: list[float]) -> None:
    limiter = RateLimiter(5)
    limiter.hit("ip:a", cost=4)
    limiter.hit("ip:a", cost=1)  # 5 of 5
    with pytest.raises(RateLimitedError):
        limiter.hit("ip:a")
    clock[0] += 60.5  # the window has moved past those hits
    limiter.hit("ip:a", cost=5)


@pytest.mark.parametrize(
    ("per_minute", "cost"),
    [
        (1, 2),  # case: the smallest limit
        (4, 5),  # case: one over
        (4, 40),  # case: far over
    ],
)
def test_work_that_never_fits_says_what_to_change(per_minute: int, cost: int):
    limiter = RateLimiter(per_minute)
    with pytest.raises(RateLimitedError) as caught:
        limiter.hit("ip:a", cost=cost)
    assert caught.value.message == (
        f"This request counts {cost} toward the rate limit (one per image and "
        f"tile, and per 256 tokens of its budget), more than the {per_minute} per "
        "minute allowed (RATE_LIMIT): send fewer images, ask for fewer tiles or "
        "fewer new tokens."
    )
    assert caught.value.retry_after_s == 60
    limiter.hit("ip:a", cost=per_minute)  # the refused request counted nothing


def test_work_of_exactly_the_limit_fits_and_no_limit_takes_anything() -> None:
    RateLimiter(4).hit("ip:a", cost=4)
    RateLimiter(0).hit("ip:a", cost=10_000)
    RateLimiter(0).check_cost(10_000)


@pytest.mark.parametrize(
    ("waited_s", "retry_after_s"),
    [
        (0.0, 60),  # case: the window just started
        (30.25, 30),  # case: half way, rounded up
        (59.5, 1),  # case: the last half second says 1, not 0 or 2
        (59.99, 1),  # case: never 0 (clients would retry at once)
    ],
)
def test_retry_after_is_the_time_until_the_window_frees_a_slot(
    clock: list[float], waited_s: float, retry_after_s: int
) -> None:
    limiter = RateLimiter(2)
    limiter.hit("ip:a", cost=2)
    clock[0] += waited_s
    with pytest.raises(RateLimitedError) as caught:
        limiter.hit("ip:a")
    assert caught.value.retry_after_s == retry_after_s
    assert caught.value.message == (
        "Too many requests: the limit is 2 per minute (RATE_LIMIT). "
        f"Try again in {retry_after_s} s."
    )


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            None,
            "This API needs an API key: send the header 'Authorization: Bearer <key>'.",
        ),  # case: no header
        (
            "s3cret-key",
            "This API needs an API key: send the header 'Authorization: Bearer <key>'.",
        ),  # case: the key without a scheme
        ("Bearer nope", "The API key is not valid."),  # case: wrong key
    ],
)
def test_api_key_messages(header: str | None, message: str) -> None:
    with pytest.raises(UnauthorizedError) as caught:
        check_api_key(header, "s3cret-key")
    assert caught.value.message == message
    assert caught.value.http_status == 401
