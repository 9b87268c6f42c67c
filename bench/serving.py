"""``vllm bench serve``-style figures for an OpenAI backend, through our client.

Each request is one streamed ``generate`` (image + task, as the app sends
it); time to first token is when the first text piece arrives. Per
concurrency level: request and output-token throughput, and mean / median /
p99 of TTFT, time per output token (TPOT, after the first) and end-to-end
latency, in seconds.
"""

from __future__ import annotations

import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.errors import ModelUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = (1, 8, 32)


@dataclass(frozen=True)
class RequestTiming:
    """One request: seconds from send to first piece and to the end; tokens."""

    ttft_s: float
    e2e_s: float
    output_tokens: int


def timed_request(
    backend: Any, image: Image.Image, prompt: str, max_new_tokens: int
) -> RequestTiming:
    """One streamed generate; raises ModelUnavailableError as generate does."""
    first: list[float] = []
    start = time.perf_counter()

    def on_text(piece: str) -> None:
        if not first:
            first.append(time.perf_counter())

    answer = backend.generate(
        image, prompt, max_new_tokens=max_new_tokens, on_text=on_text
    )
    end = time.perf_counter()
    return RequestTiming(
        ttft_s=(first[0] if first else end) - start,
        e2e_s=end - start,
        output_tokens=answer.num_tokens,
    )


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p99": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "mean": round(statistics.fmean(values), 6),
        "median": round(statistics.median(values), 6),
        "p99": round(p99, 6),
    }


def run_level(
    backend: Any,
    work: list[tuple[Image.Image, str, int]],
    concurrency: int,
) -> dict[str, Any]:
    """Send each (image, prompt, max_new_tokens) of ``work``, N at a time."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    timings: list[RequestTiming] = []
    errors: list[str] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(timed_request, backend, *item) for item in work]
        for future in futures:
            try:
                timings.append(future.result())
            except ModelUnavailableError as exc:
                errors.append(exc.message)
    duration = time.perf_counter() - start
    tokens = sum(t.output_tokens for t in timings)
    tpot = [
        (t.e2e_s - t.ttft_s) / (t.output_tokens - 1)
        for t in timings
        if t.output_tokens > 1
    ]
    if errors:
        logger.warning(
            "%d of %d requests failed: %s", len(errors), len(work), errors[0]
        )
    return {
        "concurrency": concurrency,
        "requests": len(work),
        "completed": len(timings),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "duration_s": round(duration, 6),
        "request_throughput_per_s": round(len(timings) / duration, 3),
        "output_tokens": tokens,
        "output_token_throughput_per_s": round(tokens / duration, 3),
        "ttft_s": _stats([t.ttft_s for t in timings]),
        "tpot_s": _stats(tpot),
        "e2e_s": _stats([t.e2e_s for t in timings]),
    }


def serving_figures(
    backend: Any,
    cases: list[tuple[Image.Image, str, int]],
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY,
    requests_per_level: int | None = None,
) -> list[dict[str, Any]]:
    """One ``run_level`` per concurrency; ``cases`` are cycled to fill each level.

    ``requests_per_level`` None: 4 x concurrency, at least 8 (every slot busy
    several times, as ``vllm bench serve --num-prompts`` would be set).
    """
    if not cases:
        raise ValueError("serving_figures needs at least one (image, prompt) case")
    levels = []
    for level in concurrency:
        count = requests_per_level or max(8, 4 * level)
        work = [cases[i % len(cases)] for i in range(count)]
        levels.append(run_level(backend, work, level))
    return levels
