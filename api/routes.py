"""REST API on Chainlit's FastAPI app: same process, model and queue as the chat.

Routes: GET /health, GET /ready, POST /segment and /segment/ (PaliGemma-service
compatible, with its ``message`` list), POST /process (Sa2VA-style JSON), POST
/v1/analyze (many images; JSON, COCO, YOLO or a ZIP; per-image failures never
stop the others), GET / for JSON clients (browsers still get the chat), and the
OpenAI-compatible POST /v1/chat/completions + GET /v1/models (openai_routes.py).
Every error is JSON ``{"error": {"code", "message"}}`` with a 4xx for client
faults (503 + Retry-After when busy or loading); see docs/api.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request

from api.compat import (
    ENDPOINTS,
    WELCOME,
    JsonClientRoute,
    legacy_message,
    uptime_text,
)
from api.formats import encode_results
from api.openai_routes import add_openai_routes
from api.request import (
    MB,
    clean_prompt,
    decode_base64,
    detection_json,
    error_json,
    form_file,
    form_text,
    parse_format,
    parse_include,
    parse_polygons,
    png_b64,
    read_body,
    read_form,
)
from api.service import (
    ApiContext,
    decoding_for,
    free_prompt_intent,
    intent_for,
    segment_masks,
    v1_item,
)
from api.video import analyze_clips, is_video_upload
from core.batch import BatchItem
from core.config import Settings
from core.engine.queue import ModelQueue
from core.errors import (
    AppError,
    ModelLoadingError,
    ModelUnavailableError,
    UserInputError,
)
from core.export.formats import get_format
from core.readiness import Readiness, Report
from core.security import redact, shown_model_id
from core.security.auth import SessionTokens
from core.service import LOADING_RETRY_S, Services, parse_tiles

logger = logging.getLogger(__name__)


def error_response(exc: AppError) -> JSONResponse:
    """``{"error": {"code", "message"}}`` with the error's status (+ Retry-After)."""
    headers = {}
    retry_after = getattr(exc, "retry_after_s", None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    body = {"error": error_json(exc.code, exc.message)}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


class ApiRoute(APIRoute):
    """Turns every failure into the JSON error shape; never leaks a traceback."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def guarded(request: Request):
            try:
                return await handler(request)
            except AppError as exc:
                return error_response(exc)
            except RequestValidationError as exc:
                return error_response(UserInputError(f"Invalid request: {exc}"))
            except HTTPException as exc:  # e.g. a malformed multipart body
                error = UserInputError(f"Invalid request: {exc.detail}")
                error.http_status = exc.status_code if exc.status_code < 500 else 400
                return error_response(error)
            except Exception:
                logger.exception("%s %s failed", request.method, request.url.path)
                error = AppError("Internal error; the details are in the server log.")
                return error_response(error)

        return guarded


def install_api(
    app: FastAPI,
    *,
    services: Services | None = None,
    manager: Any = None,
    queue: ModelQueue | None = None,
    settings: Settings | None = None,
    engines: Any = None,
    tokens: SessionTokens | None = None,
) -> None:
    """Add the API routes to ``app`` in front of Chainlit's catch-all GET route.

    ``services`` is the process's one application service (chainlit_app.py
    builds it: the chat's engines, queue and rate limiter), so the API and
    the chat share the model, the queue turns and RATE_LIMIT. Without it
    (tests), one is built from ``settings`` and ``engines`` (an
    EngineRegistry) or ``manager`` alone, and ``queue``. With ``tokens``
    (AUTH_USERS), a logged-in user's login token admits as well as the API
    key. Idempotent.
    """
    if getattr(app.state, "paligemma_api", False):
        return
    app.state.paligemma_api = True
    if services is None:
        services = Services.build(settings, engines or manager, queue)
    router = build_router(ApiContext(services, tokens))
    before = len(app.router.routes)
    app.include_router(router)
    ours = app.router.routes[before:]
    del app.router.routes[before:]
    app.router.routes[:0] = ours  # first match wins: shadows Chainlit's /health
    paths = ", ".join(getattr(route, "path", "?") for route in router.routes)
    logger.info("REST API installed in front of Chainlit's routes: %s", paths)


def build_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(route_class=ApiRoute)
    readiness = Readiness(ctx.engines, ctx.settings)  # /ready's cached probes

    async def welcome() -> JSONResponse:
        return JSONResponse({"message": WELCOME})

    router.add_api_route(
        "/", welcome, methods=["GET"], route_class_override=JsonClientRoute
    )

    @router.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse(health_body(ctx, readiness))

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        history = getattr(request.app.state, "chat_history", None)
        report = await readiness.check(history)  # engines answer now, history
        return ready_response(ctx, report)

    _add_single_image_routes(router, ctx)
    _add_analyze_route(router, ctx)
    add_openai_routes(router, ctx)
    return router


def health_body(ctx: ApiContext, readiness: Readiness) -> dict[str, Any]:
    """GET /health: uptime, every model's state, the queue; never a local path."""
    status = ctx.manager.status
    uptime_s = time.time() - ctx.started
    return {
        "status": "ok",
        "uptime": uptime_text(uptime_s),
        "uptime_s": round(uptime_s, 3),
        "started_at": datetime.fromtimestamp(ctx.started, UTC).isoformat(),
        "model_path": shown_model_id(status.model_id),
        "endpoints": ENDPOINTS,
        "models": [
            {
                "id": shown_model_id(model_id),  # local paths: a name
                "state": engine.status.state,
                "error": engine.status.error and redact(engine.status.error),
            }
            for model_id, engine in ctx.engines.engines()
        ],
        "model_id": shown_model_id(status.model_id),
        "model_state": status.state,
        "device": status.device,
        "dtype": status.dtype,
        "model_loaded": status.model_loaded,
        "vae_loaded": status.vae_loaded,
        "backend": status.backend,
        "queue_depth": ctx.services.queue.depth,
        "queue": ctx.services.queue.stats(),
        "checks": readiness.last(),  # /ready's last probes; none run here
    }


def ready_response(ctx: ApiContext, report: Report) -> JSONResponse:
    """GET /ready: 200 once every model and probe is ready, else 503."""
    status = ctx.manager.status
    loading = [  # the other checkpoints of MODELS, still on their way
        shown_model_id(model_id)
        for model_id, engine in ctx.engines.engines()
        if engine.status.state in ("idle", "loading")
    ]
    if status.state == "ready" and status.model_loaded and status.vae_loaded:
        if report.failure is not None:
            return _probe_failed(report)
        if not loading:
            model_id = shown_model_id(status.model_id)  # never a local path
            body = {"status": "ready", "model_id": model_id}
            return JSONResponse({**body, "checks": report.checks})
        return error_response(
            ModelLoadingError(
                f"Not ready: still loading {', '.join(loading)}.",
                retry_after_s=LOADING_RETRY_S,
            )
        )
    if status.state == "failed" or status.state == "ready":  # ready: VAE failed
        reason = status.error or "loading failed"
        return error_response(ModelUnavailableError(f"Not ready: {reason}"))
    return error_response(
        ModelLoadingError(
            f"Not ready: the model is {status.state} (model loaded: "
            f"{status.model_loaded}, VAE loaded: {status.vae_loaded}).",
            retry_after_s=LOADING_RETRY_S,
        )
    )


def _add_single_image_routes(router: APIRouter, ctx: ApiContext) -> None:
    """POST /segment (PaliGemma-service shape) and /process (Sa2VA shape)."""
    settings = ctx.settings
    max_upload = settings.max_upload_mb * MB

    @router.post("/segment")
    @router.post("/segment/")  # the older service's documented path
    async def segment(request: Request) -> JSONResponse:
        client = ctx.admit(request)
        form = await read_form(request, max_upload, max_files=1)
        prompt = clean_prompt(form_text(form, "prompt"), settings.max_prompt_chars)
        model = form_text(form, "model_id")
        ctx.engine_for(model)  # 400/403/409 before anything is read
        upload = await form_file(form, "image_file")
        url = form_text(form, "image_url")
        if (upload is None) == (not url):
            raise UserInputError(
                "Send exactly one of 'image_file' (an upload) or 'image_url'; got "
                + ("both." if upload is not None else "neither.")
            )
        intent = await asyncio.to_thread(intent_for, prompt)  # may load langid
        tiles = parse_tiles(form_text(form, "tiles"))
        job = ctx.prepare(client, intent, ctx.services.options(None, tiles, model))
        data = upload[1] if upload is not None else await ctx.fetch(url)
        image = await ctx.load(data)
        result = await ctx.run(request, job, image)
        masks = await asyncio.to_thread(segment_masks, result)
        image_b64 = await asyncio.to_thread(png_b64, image)
        body = {"image": image_b64, "masks": masks, "message": legacy_message(masks)}
        return JSONResponse(body)

    @router.post("/process")
    async def process(request: Request) -> JSONResponse:
        client = ctx.admit(request)
        body = await _json_body(request, max_upload * 4 // 3 + 64 * 1024)
        prompt = clean_prompt(body.get("prompt"), settings.max_prompt_chars)
        model = body.get("model_id")
        ctx.engine_for(model)
        intent = await asyncio.to_thread(free_prompt_intent, prompt)
        job = ctx.prepare(client, intent, ctx.services.options(model=model))
        image = await ctx.load(decode_base64(body.get("base64Image"), max_upload))
        result = await ctx.run(request, job, image)
        include = frozenset({"mask_rle"})
        objects = await asyncio.to_thread(
            lambda: [detection_json(d, include) for d in result.detections]
        )
        return JSONResponse({"result": result.raw_text, "objects": objects})


async def _json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object (base64 images are 4/3 of their bytes)."""
    await read_body(request, max_bytes)
    try:
        body = await request.json()
    except RecursionError as exc:  # json nests one Python frame per level
        raise UserInputError("The JSON body is nested too deeply.") from exc
    except ValueError as exc:
        raise UserInputError(f"The body must be JSON ({exc}).") from exc
    if not isinstance(body, dict):
        raise UserInputError("The body must be a JSON object.")
    return body


def _add_analyze_route(router: APIRouter, ctx: ApiContext) -> None:
    """POST /v1/analyze: many images, JSON or an export format."""
    settings = ctx.settings
    limit = settings.max_images_per_request
    too_many = (
        f"Send at most {limit} images per request (MAX_IMAGES_PER_REQUEST); "
        "split the rest over more requests."
    )

    @router.post("/v1/analyze")
    async def analyze(request: Request) -> Response:
        client = ctx.admit(request)
        largest = max(settings.max_upload_mb, settings.video_max_mb) * MB
        form = await read_form(request, largest, limit, too_many)
        prompt = clean_prompt(form_text(form, "prompt"), settings.max_prompt_chars)
        model = form_text(form, "model_id")
        engine = ctx.engine_for(model)
        options = ctx.services.options(
            decoding_for(
                form_text(form, "decoding"),
                form_text(form, "max_new_tokens"),
                settings.max_new_tokens_limit,
            ),
            parse_tiles(form_text(form, "tiles")),
            model,
        )
        include = parse_include(form_text(form, "include"))
        fmt = parse_format(form_text(form, "format"))
        polygons = parse_polygons(form_text(form, "polygons"), fmt)
        files = form.getlist("images") + form.getlist("image")
        if not files or any(isinstance(f, str) for f in files):
            raise UserInputError(
                "Attach one or more image files (multipart) in the field 'images'."
            )
        if any(is_video_upload(f) for f in files):  # clips: sampled and tracked
            args = (prompt, options, files, include, fmt)
            return await analyze_clips(ctx, request, client, *args)
        intent = await asyncio.to_thread(intent_for, prompt)  # may load langid
        job = ctx.prepare(client, intent, options, images=len(files))  # every item
        # the images are kept for overlays where the answer holds them
        overlays = "overlay" in include and (fmt == "json" or get_format(fmt).overlays)
        items, errors = await ctx.run_many(request, job, files, keep_image=overlays)
        headers = {"X-Failed-Items": str(len(errors))}
        if len(errors) == len(items):  # nothing worked: the first error decides
            return _all_failed(engine, items, errors[0], headers)
        return await _analyze_response(engine, items, fmt, include, polygons, headers)


async def _analyze_response(
    engine: Any,
    items: list[BatchItem],
    fmt: str,
    include: frozenset[str],
    polygons: bool,
    headers: dict[str, str],
) -> Response:
    """The /v1/analyze answer in ``fmt`` (encoded off the loop)."""
    if fmt == "json":
        results = await asyncio.to_thread(
            lambda: [v1_item(item, include) for item in items]
        )
        body = {"model_id": shown_model_id(engine.status.model_id)}
        body["results"] = results
        return JSONResponse(body, headers=headers)
    data, media_type, filename = await asyncio.to_thread(
        encode_results,
        items,
        fmt,
        polygons=polygons,
        overlays="overlay" in include,  # where the format holds them (formats)
    )
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(data, media_type=media_type, headers=headers)


def _probe_failed(report: Report) -> JSONResponse:
    """503 naming the check that failed, with every check's last result."""
    error = ModelUnavailableError(f"Not ready: {report.failure}")
    body = {"error": error_json(error.code, error.message), "checks": report.checks}
    return JSONResponse(body, status_code=503)


def _all_failed(
    engine: Any, items: list[BatchItem], first: AppError, headers: dict[str, str]
) -> JSONResponse:
    """Every image failed: JSON whatever the format, with the first error's
    status (and Retry-After), the error and the per-item results."""
    response = error_response(first)
    retry = response.headers.get("retry-after")
    if retry:
        headers = {**headers, "Retry-After": retry}
    body = {
        "model_id": shown_model_id(engine.status.model_id),
        "results": [v1_item(item, frozenset()) for item in items],
        "error": error_json(first.code, first.message),
    }
    return JSONResponse(body, status_code=response.status_code, headers=headers)
