"""What the REST routes share: context, auth + rate limit, image loading and
fetching, the model through the shared queue, and result encoding."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from starlette.requests import Request

from core import pipeline
from core.api_io import MB, detection_json, mask_png_b64
from core.config import Settings
from core.errors import BusyError, ModelUnavailableError, UserInputError
from core.fetch import ENABLE_HINT, UrlPolicy, UrlRefusedError, fetch_image_url
from core.images import load_image
from core.intent import parse_intent
from core.model_queue import ModelQueue
from core.ratelimit import RateLimiter, check_api_key
from core.render import render_overlay, to_png_bytes
from core.types import AnalysisResult, Decoding, Intent

logger = logging.getLogger(__name__)

LOADING_RETRY_S = 10


class ModelLoadingError(BusyError):
    """The model is not loaded yet (503 with Retry-After)."""

    code = "model_loading"


@dataclass
class ApiContext:
    """One per server: the chat's ModelManager and ModelQueue, shared."""

    manager: Any
    queue: ModelQueue
    settings: Settings
    limiter: RateLimiter
    started: float = field(default_factory=time.time)

    @property
    def loaded_model_id(self) -> str:
        return self.manager.status.model_id

    def admit(self, request: Request) -> None:
        """Auth (401), then the rate limit (429), before the body is read."""
        key_id = check_api_key(
            request.headers.get("authorization"), self.settings.api_key
        )
        client = request.client.host if request.client else "unknown"
        self.limiter.hit(key_id or f"ip:{client}")

    async def fetch(self, url: str) -> bytes:
        """Bytes at a client's image_url, under the SSRF policy (403 when off)."""
        settings = self.settings
        if not settings.allow_image_url:
            raise UrlRefusedError(ENABLE_HINT)
        policy = UrlPolicy(
            allowlist=settings.image_url_allowlist,
            max_bytes=settings.image_url_max_mb * MB,
            timeout_s=settings.image_url_timeout_s,
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
        self, image: Image.Image, intent: Intent, decoding: Decoding
    ) -> AnalysisResult:
        """The model, through the shared queue; 503 while it is not ready."""
        status = self.manager.status
        if status.state == "failed":
            raise ModelUnavailableError(status.error or "The model failed to load.")
        if status.state != "ready":
            if status.state == "idle":
                self.manager.start_background_load()
            raise ModelLoadingError(
                "The model is still loading; try again shortly.",
                retry_after_s=LOADING_RETRY_S,
            )
        return await self.queue.submit(
            pipeline.analyze,
            image,
            intent,
            self.manager,
            decoding=decoding,
            max_new_tokens=self.settings.max_new_tokens,
        )


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


def decoding_for(preset: str | None, max_new_tokens: str | None) -> Decoding:
    """Decoding from form fields; 400 naming the bad value."""
    try:
        tokens = int(max_new_tokens) if max_new_tokens not in (None, "", "0") else None
        return Decoding(preset=preset or "greedy", max_new_tokens=tokens)
    except ValueError as exc:
        raise UserInputError(f"Invalid decoding options: {exc}") from exc


def v1_item(
    result: AnalysisResult,
    image: Image.Image,
    include: frozenset[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """One /v1/analyze result (blocking: encodes masks and the overlay)."""
    item: dict[str, Any] = {
        "prompt": result.intent.prompt,
        "task": result.intent.task,
        "image_size_wh": list(result.image_size_wh),
        "raw_text": result.raw_text,
        "answer": result.answer,
        "truncated": result.truncated,
        "detections": [detection_json(d, include) for d in result.detections],
    }
    if "overlay" in include:
        overlay = to_png_bytes(render_overlay(image, result.detections))
        item["overlay_png"] = base64.b64encode(overlay).decode("ascii")
    all_timings = {**result.timings_s, **timings}
    item["timings_s"] = {name: round(s, 4) for name, s in all_timings.items()}
    return item


def segment_masks(result: AnalysisResult) -> list[dict[str, Any]]:
    """The PaliGemma-service ``masks`` list, in original-image pixels.

    ``mask`` is a full-size PNG (0/255) or None for box-only objects (detect).
    """
    return [
        {
            "mask": mask_png_b64(d.mask) if d.mask is not None else None,
            "coordinates": list(d.box_px),
            "label": d.label,
        }
        for d in result.detections
    ]
