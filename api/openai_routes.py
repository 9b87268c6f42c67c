"""An OpenAI-compatible door: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Open WebUI, LM Studio or the ``openai`` package talk to the same model, queue,
API key and rate limit as the REST API. The answer is what the chat answers:
the reply text with the box table, and the overlay as a markdown image — a
signed, expiring link to ``GET /v1/files/<name>`` (default) or a data URI when
the request asks ``"overlay": "data_uri"`` (``"none"`` leaves it out).
Streaming (``"stream": true``) sends server-sent events in OpenAI's chunk shape.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.requests import Request

from api.openai_chat import NO_IMAGE, ChatRequest, parse_chat
from api.openai_tasks import answer_task
from api.request import MB, decode_base64, error_json, read_body
from api.service import ApiContext, decoding_for
from core.errors import (
    AppError,
    LinkRefusedError,
    ModelNotFoundError,
    UserInputError,
)
from core.render import render_overlay, to_jpeg_bytes
from core.reply import reply_markdown
from core.security import shown_model_id
from core.service import Job, runs_model
from core.types import Decoding

logger = logging.getLogger(__name__)

OVERLAY_MODES = ("link", "data_uri", "none")
LINK_TTL_S = 3600  # overlay links expire after an hour
KEEP_OVERLAYS = 500  # files kept on disk; the oldest go first
ALIAS = "paligemma"  # always accepted as the model name


class OverlayStore:
    """Overlay JPEGs on disk behind signed, expiring links (one key per process)."""

    def __init__(self, folder: Path, ttl_s: int = LINK_TTL_S) -> None:
        self.folder = folder
        self.ttl_s = ttl_s
        self._key = secrets.token_bytes(32)

    def _signature(self, name: str, expires: int) -> str:
        message = f"{name}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def save(self, data: bytes) -> str:
        """Write ``data``; returns the query-signed path ``/v1/files/<name>?...``."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{uuid.uuid4().hex}.jpg"
        (self.folder / name).write_bytes(data)
        self._prune()
        expires = int(time.time()) + self.ttl_s
        return (
            f"/v1/files/{name}?expires={expires}&sig={self._signature(name, expires)}"
        )

    def path_for(self, name: str, expires: str | None, sig: str | None) -> Path:
        """The file behind a signed link; UserInputError (403/404) otherwise."""
        try:
            expires_at = int(expires or "")
        except ValueError:
            expires_at = 0
        good = sig and hmac.compare_digest(sig, self._signature(name, expires_at))
        if not good or expires_at < time.time():
            raise LinkRefusedError("This overlay link is invalid or has expired.")
        path = self.folder / name
        if not path.is_file():  # name is signed, so it is one of ours
            raise LinkRefusedError("This overlay is no longer stored.")
        return path

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.jpg"), key=lambda p: p.stat().st_mtime)
        for old in files[:-KEEP_OVERLAYS]:
            old.unlink(missing_ok=True)


def add_openai_routes(router: APIRouter, ctx: ApiContext) -> None:
    """Register the OpenAI-compatible routes on the API's router."""
    store = OverlayStore(Path(ctx.settings.data_dir) / "openai-overlays")

    @router.get("/v1/models")
    async def models(request: Request) -> JSONResponse:
        ctx.admit(request)
        created = int(ctx.started)
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "local"}
            for name in served_models(ctx)
        ]
        return JSONResponse({"object": "list", "data": data})

    @router.get("/v1/files/{name}")
    async def overlay_file(name: str, expires: str = "", sig: str = "") -> Any:
        path = store.path_for(name, expires, sig)
        return FileResponse(path, media_type="image/jpeg")

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        return await _chat_completion(ctx, store, request)


def served_models(ctx: ApiContext) -> dict[str, str | None]:
    """Model name -> the id it runs (None: the default): the alias (the first
    model), then every model of MODELS by the name clients see
    (EngineRegistry.names; never a local path), and as the engine reports it
    once loaded."""
    names = {model_id: name for name, model_id in ctx.engines.names().items()}
    ids: dict[str, str | None] = {ALIAS: None}
    for configured, engine in ctx.engines.engines():
        ids.setdefault(names[configured], configured)
        reported = shown_model_id(engine.status.model_id)
        if reported:
            ids.setdefault(reported, configured)
    return ids


async def _chat_completion(ctx: ApiContext, store: OverlayStore, request: Request):
    """POST /v1/chat/completions: the conversation's last request, answered as
    the chat would (JSON, or server-sent events with ``"stream": true``)."""
    settings = ctx.settings
    client = ctx.admit(request)
    max_body = settings.max_upload_mb * MB * 4 // 3 + 256 * 1024  # base64 images
    raw = await read_body(request, max_body)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UserInputError(f"The body must be JSON ({exc}).") from exc
    if not isinstance(body, dict):
        raise UserInputError("The body must be a JSON object.")
    model = body.get("model") or ALIAS
    model_id = _model_named(ctx, model, served_models(ctx))
    overlay = body.get("overlay", "link")
    if overlay not in OVERLAY_MODES:
        raise UserInputError(f"'overlay' must be one of {list(OVERLAY_MODES)}.")
    messages, completion_id = body.get("messages"), f"chatcmpl-{uuid.uuid4().hex}"
    task = await asyncio.to_thread(  # a title, tags, follow-ups: no model
        answer_task, messages, settings.max_prompt_chars
    )
    if task is not None:
        known = asyncio.sleep(0, task)  # an answer that is already there
        return await _reply(body, completion_id, model, known)
    parsed = await asyncio.to_thread(  # the first question may load langid
        parse_chat, messages, settings.max_prompt_chars
    )
    decoding = _decoding(
        body.get("max_tokens") or body.get("max_completion_tokens"),
        settings.max_new_tokens_limit,
    )
    job = None
    if runs_model(parsed.intent):  # one image, its token budget
        options = ctx.services.options(decoding, model=model_id)
        job = ctx.prepare(client, parsed.intent, options)
    answer = _answer(ctx, store, request, parsed, job, overlay)
    return await _reply(body, completion_id, model, answer)


async def _reply(body: dict, completion_id: str, model: str, answer: Any) -> Any:
    """The ``answer`` coroutine as server-sent events or one JSON completion."""
    if body.get("stream") is True:
        return StreamingResponse(
            _stream(completion_id, model, answer),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    return JSONResponse(_completion(completion_id, model, await answer))


def _model_named(ctx: ApiContext, model: Any, served: dict[str, str | None]) -> Any:
    """The model id a request's ``model`` runs (None: the default): a served
    name, or a model's id as configured (still accepted, never listed); 404
    naming the served ones."""
    try:
        known = isinstance(model, str) and model in served  # a list is unhashable
        model_id = served[model] if known else model
        ctx.engine_for(model_id)
    except AppError:
        raise ModelNotFoundError(
            f"Unknown model {model!r}; this server serves {list(served)} "
            "(GET /v1/models)."
        ) from None
    return model_id


def _decoding(max_tokens: Any, limit: int) -> Decoding:
    """``max_tokens`` under the same rules as the REST API's ``max_new_tokens``
    (``decoding_for``: 1..2048 and at most MAX_NEW_TOKENS_LIMIT)."""
    if max_tokens is None:
        return Decoding()
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise UserInputError("'max_tokens' must be an integer.")
    if max_tokens < 1:
        raise UserInputError(f"'max_tokens' must be at least 1, got {max_tokens}.")
    return decoding_for(None, str(max_tokens), limit)


async def _answer(
    ctx: ApiContext,
    store: OverlayStore,
    request: Request,
    parsed: ChatRequest,
    job: Job | None,
    overlay: str,
) -> str:
    """The chat's markdown answer for the last request (``job``: None when
    it does not run the model)."""
    if job is None:
        return parsed.intent.message or "Ask e.g. 'segment the cat' about a photo."
    if parsed.image_url is None:
        return NO_IMAGE
    url = parsed.image_url
    if url.lower().startswith("data:"):
        data = decode_base64(url, ctx.settings.max_upload_mb * MB)
    else:
        data = await ctx.fetch(url)
    image = await ctx.load(data)
    result = await ctx.run(request, job, image)
    text = reply_markdown(result, parsed.image_name or f"image {parsed.image_number}")
    if overlay == "none" or not result.detections:
        return text
    jpeg = await asyncio.to_thread(
        lambda: to_jpeg_bytes(render_overlay(image, result.detections))
    )
    if overlay == "data_uri":
        src = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    else:
        path = await asyncio.to_thread(store.save, jpeg)
        src = str(request.base_url).rstrip("/") + path
    return f"{text}\n\n![overlay]({src})"


def _completion(completion_id: str, model: str, content: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _chunk(completion_id: str, model: str, delta: dict, finish: str | None) -> str:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def _stream(completion_id: str, model: str, answer: Any) -> AsyncIterator[str]:
    """The role at once, then the answer, then [DONE]; a failure becomes text.

    The status line is already sent when the model runs, so an error is
    written into the answer ("⚠️ ...") instead of an HTTP status.
    """
    yield _chunk(completion_id, model, {"role": "assistant", "content": ""}, None)
    try:
        content = await answer
    except AppError as exc:  # the same redaction as every API error body
        content = f"⚠️ {error_json(exc.code, exc.message)['message']}"
    except Exception:
        logger.exception("streamed chat completion failed")
        content = "⚠️ Internal error; the details are in the server log."
    yield _chunk(completion_id, model, {"content": content}, None)
    yield _chunk(completion_id, model, {}, "stop")
    yield "data: [DONE]\n\n"
