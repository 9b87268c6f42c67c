"""What the REST routes share: context, auth + rate limit, image loading and
fetching, the model through the shared queue, per-image outcomes (``BatchItem``,
as in core.batch) and result encoding."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image
from starlette.requests import Request

from api.fetch import ENABLE_HINT, UrlPolicy, UrlRefusedError, fetch_image_url
from api.request import MB, detection_json, error_json, mask_png_b64
from core.batch import INTERNAL_ERROR, BatchItem
from core.config import Settings
from core.engine.queue import API, ModelQueue
from core.engine.registry import EngineRegistry
from core.errors import (
    AppError,
    ModelLoadingError,
    ModelUnavailableError,
    RequestCancelledError,
    UserInputError,
)
from core.images import load_image
from core.intent.parse import parse_intent
from core.intent.text import run_intent
from core.pipeline import CancellableModel, token_budget
from core.ratelimit import RateLimiter, work_cost
from core.render import render_overlay, to_png_bytes
from core.security.auth import SessionTokens, api_identity
from core.security.clients import client_address
from core.tiling import TileSpec, analyze_tiled, tile_grid, tile_looks
from core.types import AnalysisResult, Decoding, Intent

logger = logging.getLogger(__name__)

LOADING_RETRY_S = 10
AUTH_COOKIE = "access_token"  # Chainlit's login cookie


@dataclass
class ApiContext:
    """One per server: the chat's engines (``manager`` is the default one) and
    ModelQueue, shared. ``engines`` defaults to ``manager`` alone."""

    manager: Any
    queue: ModelQueue
    settings: Settings
    limiter: RateLimiter
    tokens: SessionTokens | None = None  # AUTH_USERS: a user's login admits
    started: float = field(default_factory=time.time)
    engines: EngineRegistry | None = None

    def __post_init__(self) -> None:
        if self.engines is None:
            key = self.settings.model_id or "auto"
            self.engines = EngineRegistry(self.settings, {key: self.manager})

    def engine_for(self, model_id: Any) -> Any:
        """The engine a client's ``model_id`` names (None/"": the default);
        400 for a non-string, 403/409 for ids not served (EngineRegistry.get)."""
        if model_id is not None and not isinstance(model_id, str):
            raise UserInputError(
                f"model_id must be a string, got {type(model_id).__name__}."
            )
        return self.engines.get(model_id.strip() if model_id else None)

    def admit(self, request: Request) -> str:
        """Auth (401), then one hit of the rate limit (429), before the body is
        read. Returns the client id the limit counts for (``charge``)."""
        client_id = self.client_of(request)
        self.limiter.hit(client_id)
        return client_id

    def client_of(self, request: Request) -> str:
        """Who is asking, for rate limits and queue turns: the API key's id, a
        logged-in user (``user:<name>``, with AUTH_USERS), or the client
        address (``client_address``: X-Forwarded-For only from a proxy of
        FORWARDED_ALLOW_IPS). 401 on bad credentials."""
        identity = api_identity(
            request.headers.get("authorization"),
            request.cookies.get(AUTH_COOKIE),
            self.settings.api_key,
            self.tokens,
        )
        address = client_address(request.scope, self.settings.forwarded_allow_ips)
        return identity or f"ip:{address}"

    def charge(
        self,
        client_id: str,
        images: int,
        intent: Intent,
        decoding: Decoding,
        tiles: TileSpec = "off",
    ) -> None:
        """The rest of a request's cost once its size is known: one hit per
        model run (per image, and per tile of an NxM grid plus the whole
        photo) and per TOKENS_PER_HIT of the token budget the pipeline will
        use, less the one ``admit`` took (429 past the limit). ``tiles="auto"``
        counts one run per image here: its grid depends on the image's size,
        and ``run`` charges its other runs once the image is decoded."""
        looks = tile_looks(tiles, intent) if isinstance(tiles, tuple) else 1
        cost = work_cost(images * looks, self._budget(intent, decoding))
        self.limiter.check_cost(cost)
        if cost > 1:
            self.limiter.hit(client_id, cost=cost - 1)

    def charge_grid(
        self,
        client_id: str,
        grid: tuple[int, int],
        intent: Intent,
        decoding: Decoding,
    ) -> None:
        """``tiles="auto"`` resolved to ``grid`` on a decoded image: its runs
        past the one ``charge`` counted, before any of them runs (429 past the
        limit, or when this image alone could never be admitted)."""
        looks = tile_looks(grid, intent)
        if looks == 1:
            return
        budget = self._budget(intent, decoding)
        self.limiter.check_cost(work_cost(looks, budget))
        self.limiter.hit(client_id, cost=work_cost(looks - 1, budget))

    def _budget(self, intent: Intent, decoding: Decoding) -> int:
        """The token budget the pipeline will use for ``intent``."""
        return (
            decoding.max_new_tokens
            or self.settings.max_new_tokens
            or token_budget(intent)
        )

    async def fetch(self, url: str) -> bytes:
        """Bytes at a client's image_url, under the SSRF policy (403 when off)."""
        settings = self.settings
        if not settings.allow_image_url:
            raise UrlRefusedError(ENABLE_HINT)
        policy = UrlPolicy(
            allowlist=settings.image_url_allowlist,
            max_bytes=settings.image_url_max_mb * MB,
            timeout_s=settings.image_url_timeout_s,
            ports=settings.image_url_ports,
        )
        return await fetch_image_url(url, policy)

    async def load(self, data: bytes) -> Image.Image:
        """Validated RGB image (off the loop); ImageError/PayloadTooLargeError."""
        return await asyncio.to_thread(
            load_image,
            data,
            max_pixels=self.settings.max_image_pixels,
            max_bytes=self.settings.max_upload_mb * MB,
        )

    async def run(
        self,
        image: Image.Image,
        intent: Intent,
        decoding: Decoding,
        tiles: TileSpec = "off",
        engine: Any = None,
        *,
        request: Request | None = None,
    ) -> AnalysisResult:
        """``engine`` (default: the first model) through the shared queue in
        ``request``'s client's turn; 503 while it is not ready. When the client
        hangs up, its job leaves the queue (or stops at the next token) and
        RequestCancelledError is raised.

        ``tiles`` also runs detect/segment on overlapping tiles (core.tiling);
        "auto" charges ``request``'s client for its grid first (``charge_grid``).
        """
        engine = self.manager if engine is None else engine
        status = engine.status
        if status.state == "failed":
            raise ModelUnavailableError(status.error or "The model failed to load.")
        if status.state != "ready":
            if status.state == "idle":
                self.engines.start_background_load()
            raise ModelLoadingError(
                "The model is still loading; try again shortly.",
                retry_after_s=LOADING_RETRY_S,
            )
        client = self.client_of(request) if request is not None else "internal"
        grid = tile_grid(tiles, image.size)
        if tiles == "auto" and request is not None:  # its grid is known now
            self.charge_grid(client, grid, intent, decoding)
        cancel = threading.Event()
        work = self.queue.submit(
            analyze_tiled,
            image,
            intent,
            CancellableModel(engine, cancel),
            grid,
            decoding=decoding,
            max_new_tokens=self.settings.max_new_tokens,
            cancel=cancel,  # the queue's: set when the caller stops waiting
            client=client,
            kind=API,
            max_detections=self.settings.max_detections,
        )
        if request is None:
            return await work
        return await until_disconnected(request, work)

    async def analyze_upload(
        self,
        name: str,
        data: bytes,
        intent: Intent,
        decoding: Decoding,
        *,
        keep_image: bool = False,
        tiles: TileSpec = "off",
        engine: Any = None,
        request: Request | None = None,
    ) -> tuple[BatchItem, AppError | None]:
        """One image of a multi-image request: its BatchItem, and its error.

        Never raises for this image's own failures (bad bytes, too many pixels,
        busy, loading, a model error): they are recorded in the item, with the
        AppError kept so the route can answer with its status when every
        image failed. ``result.timings_s`` gains ``load_image`` and
        ``queue_and_model``; ``keep_image`` keeps the RGB image for overlays.
        """
        start = time.perf_counter()
        image: Image.Image | None = None
        try:
            image = await self.load(data)
            loaded = time.perf_counter()
            result = await self.run(
                image, intent, decoding, tiles, engine=engine, request=request
            )
            timings = {
                "load_image": loaded - start,
                "queue_and_model": time.perf_counter() - loaded,
            }
            result = replace(result, timings_s={**result.timings_s, **timings})
        except AppError as exc:
            logger.info("analyze: %s failed: %s", name, exc.message)
            error = exc
        except Exception as exc:  # one bad image must not lose the others
            logger.exception("analyze: unexpected error on %s", name)
            error = AppError(
                f"Unexpected error while analysing this image ({type(exc).__name__})."
            )
            error.code = INTERNAL_ERROR
        else:
            seconds = time.perf_counter() - start
            kept = image if keep_image else None
            item = BatchItem(name, image.size, result, seconds=seconds, image=kept)
            return item, None
        size = image.size if image is not None else None
        seconds = time.perf_counter() - start
        return BatchItem(name, size, None, error.message, error.code, seconds), error


async def until_disconnected(request: Request, work: Awaitable[AnalysisResult]):
    """``work``'s result, unless the client hangs up first: then ``work`` is
    cancelled (its queued job dropped) and RequestCancelledError raised."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AppError):
                await task  # the queue drops the job before this returns
    if not task.cancelled():
        return task.result()
    logger.info("%s %s: client hung up, request cancelled", request.method, request.url)
    raise RequestCancelledError("The client closed the connection; not answered.")


async def _disconnected(request: Request) -> None:
    """Return when the client hangs up (the body is already read by now, so
    the next ASGI message is the disconnect)."""
    while (await request.receive()).get("type") != "http.disconnect":
        pass  # a late body chunk: keep listening


def upload_name(filename: str | None) -> str:
    """The client's file name without any directory part; "image" when none."""
    return re.split(r"[/\\]", filename or "")[-1].strip() or "image"


def intent_for(prompt: str) -> Intent:
    """The model Intent of an API prompt; 400 when it does not run the model.

    Raw PaliGemma prompts ("segment cat", "detect a ; b", "caption en") pass
    through unchanged; plain requests are interpreted as in the chat.
    """
    intent = parse_intent(prompt)
    if intent.action != "run":
        raise UserInputError(
            intent.message
            or f"{prompt!r} does not ask anything of the model; "
            "try 'segment cat', 'detect dog ; bike' or 'caption en'."
        )
    return intent


def free_prompt_intent(prompt: str) -> Intent:
    """``intent_for`` for /process, whose Sa2VA-style clients send free prompts
    to a chat model ("Analyze this image and describe what you see."): what
    names no task or target is asked as a question (``answer en <prompt>``)."""
    intent = parse_intent(prompt)
    if intent.action == "clarify":
        return run_intent("answer", question=prompt)
    return intent_for(prompt)


def decoding_for(
    preset: str | None, max_new_tokens: str | None, limit: int = 1024
) -> Decoding:
    """Decoding from form fields; 400 naming the bad value.

    ``limit`` (MAX_NEW_TOKENS_LIMIT) caps what a client may ask for: each
    token costs model time and cache memory.
    """
    try:
        tokens = int(max_new_tokens) if max_new_tokens not in (None, "", "0") else None
    except ValueError as exc:
        raise UserInputError(
            "max_new_tokens must be a whole number (0 = sized from the request), "
            f"got {max_new_tokens!r:.40}."
        ) from exc
    try:
        decoding = Decoding(preset=preset or "greedy", max_new_tokens=tokens)
    except ValueError as exc:
        raise UserInputError(f"Invalid decoding options: {exc}") from exc
    if tokens is not None and tokens > limit:
        raise UserInputError(
            f"max_new_tokens must be at most {limit} on this server, got {tokens}; "
            "ask for fewer, or have the operator raise MAX_NEW_TOKENS_LIMIT."
        )
    return decoding


def v1_item(item: BatchItem, include: frozenset[str]) -> dict[str, Any]:
    """One /v1/analyze JSON result (blocking: encodes masks and the overlay).

    A failed item is ``{"filename", "error": {"code", "message"}}``.
    """
    result = item.result
    if result is None:
        return {"filename": item.name, "error": error_json(item.error_code, item.error)}
    body: dict[str, Any] = {
        "filename": item.name,
        "prompt": result.intent.prompt,
        "task": result.intent.task,
        "image_size_wh": list(result.image_size_wh),
        "raw_text": result.raw_text,
        "answer": result.answer,
        "truncated": result.truncated,
        "detections": [detection_json(d, include) for d in result.detections],
    }
    if "overlay" in include and item.image is not None:
        overlay = to_png_bytes(render_overlay(item.image, result.detections))
        body["overlay_png"] = base64.b64encode(overlay).decode("ascii")
    body["timings_s"] = {name: round(s, 4) for name, s in result.timings_s.items()}
    return body


def segment_masks(result: AnalysisResult) -> list[dict[str, Any]]:
    """The PaliGemma-service ``masks`` list, in original-image pixels.

    ``mask`` is a full-size PNG (0/255) or None for box-only objects (detect).
    """
    return [
        {
            "mask": mask_png_b64(d.mask) if d.has_mask else None,
            "coordinates": list(d.box_px),
            "label": d.label,
        }
        for d in result.detections
    ]
