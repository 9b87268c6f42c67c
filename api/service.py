"""What the REST routes share: the application service (core.service) with
HTTP around it: who the request comes from, auth + rate limit, image loading
and fetching, cancel on hang-up, and result encoding. Every rule of a run
(budget, cost, readiness, queue, masks beside it, per-image failures) is the
service's; this module only translates HTTP into it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from PIL import Image
from starlette.requests import Request

from api.fetch import ENABLE_HINT, UrlPolicy, UrlRefusedError, fetch_image_url
from api.request import MB, detection_json, error_json, mask_png_b64
from core.batch import BatchItem
from core.config import Settings
from core.errors import AppError, RequestCancelledError, UserInputError
from core.images import load_image
from core.intent.parse import parse_intent
from core.intent.text import run_intent
from core.render import render_overlay, to_png_bytes
from core.security.auth import SessionTokens, api_identity
from core.service import Job, Picture, RunOptions, Services, client_id, to_request
from core.service.many import run_many
from core.types import AnalysisResult, Decoding, Intent

logger = logging.getLogger(__name__)

AUTH_COOKIE = "access_token"  # Chainlit's login cookie


@dataclass
class ApiContext:
    """One per server: the process's ``services`` (engines, queue and the one
    rate limiter, shared with the chat) and, with AUTH_USERS, the login
    tokens that admit a user as well as the API key."""

    services: Services
    tokens: SessionTokens | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def engines(self) -> Any:
        return self.services.engines

    @property
    def manager(self) -> Any:
        """The default engine (the first of MODELS)."""
        return self.services.engines.default

    @property
    def started(self) -> float:
        return self.services.started

    def engine_for(self, model_id: Any) -> Any:
        """The engine a client's ``model_id`` names (core.service: 400/403/409)."""
        return self.services.engine_for(model_id)

    def admit(self, request: Request) -> str:
        """Auth (401), then one hit of the rate limit (429), before the body is
        read. Returns the client id the limit counts for (``prepare``)."""
        client = self.client_of(request)
        self.services.admit(client)
        return client

    def client_of(self, request: Request) -> str:
        """Who is asking (core.service.client_id): the API key's id, a
        logged-in user, or the client address. 401 on bad credentials."""
        credential = api_identity(
            request.headers.get("authorization"),
            request.cookies.get(AUTH_COOKIE),
            self.settings.api_key,
            self.tokens,
        )
        scope, trusted = request.scope, self.settings.forwarded_allow_ips
        return client_id(scope, trusted, credential=credential)

    def prepare(
        self, client: str, intent: Intent, options: RunOptions, images: int = 1
    ) -> Job:
        """The request charged for ``images`` (less the hit ``admit`` took)."""
        return self.services.prepare(intent, options, client, images=images, paid=1)

    async def run(self, request: Request, job: Job, image: Image.Image):
        """``job`` on ``image`` (core.service.Services.run: 503 while its engine
        loads); when the client hangs up, its job leaves the queue (or stops
        at the next token) and RequestCancelledError is raised."""
        return await until_disconnected(request, self.services.run(job, Picture(image)))

    async def run_many(self, request: Request, job: Job, files: list, **options):
        """``job`` on each uploaded file (core.service.many.run_many)."""
        sources = [(upload_name(f.filename), f.read) for f in files]
        return await run_many(
            self.services,
            job,
            sources,
            max_bytes=self.settings.max_upload_mb * MB,
            guard=lambda work: until_disconnected(request, work),
            **options,
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
    if intent.message:
        return to_request(intent)
    try:
        return to_request(intent)
    except UserInputError:
        raise UserInputError(
            f"{prompt!r} does not ask anything of the model; "
            "try 'segment cat', 'detect dog ; bike' or 'caption en'."
        ) from None


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
    if result.caption is not None:  # "detect everything": the caption first
        body["caption"] = result.caption
    for det, caption in zip(body["detections"], result.object_captions, strict=False):
        det["caption"] = caption  # "describe each object"
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
