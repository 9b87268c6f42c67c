"""/v1/analyze with video files: each clip sampled and tracked through the
service (core.service.video), answered as JSON frames with track ids (or
one COCO-video document with ``format=coco``); ``include=overlay`` adds
the annotated MP4 as base64."""

from __future__ import annotations

import asyncio
import base64
import logging
import tempfile
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from api.request import error_json
from api.service import ApiContext, until_disconnected, upload_name
from core.errors import AppError, UserInputError
from core.security import shown_model_id
from core.service import RunOptions
from core.service.video import probe, run_clip
from core.video import (
    clip_to_dict,
    coco_video,
    is_video_bytes,
    is_video_name,
    video_request,
)

logger = logging.getLogger(__name__)

VIDEO_FORMATS = ("json", "coco")


def is_video_upload(upload: UploadFile) -> bool:
    """A clip by its name, its declared type or its first bytes."""
    if is_video_name(upload.filename or ""):
        return True
    if (upload.content_type or "").lower().startswith("video/"):
        return True
    head = upload.file.read(12)
    upload.file.seek(0)
    return is_video_bytes(head)


async def analyze_clips(
    ctx: ApiContext,
    request: Request,
    client: str,
    prompt: str,
    options: RunOptions,
    files: list[UploadFile],
    include: frozenset[str],
    fmt: str,
) -> Response:
    """Each clip of ``files`` (all clips: 400 when mixed with photos)."""
    if not all(is_video_upload(f) for f in files):
        raise UserInputError(
            "Send video clips and photos in separate requests to /v1/analyze."
        )
    if fmt not in VIDEO_FORMATS:
        raise UserInputError(f"For video clips, format is json or coco; got {fmt!r}.")
    intent = await asyncio.to_thread(video_request, prompt)
    results, errors = [], []
    for upload in files:
        name = upload_name(upload.filename)
        try:
            results.append(
                await _one_clip(
                    ctx, request, client, intent, options, upload, include, fmt
                )
            )
        except AppError as exc:
            logger.info("video %s failed: %s", name, exc.message)
            errors.append(exc)
            results.append(
                {"filename": name, "error": error_json(exc.code, exc.message)}
            )
    if len(errors) == len(files):
        raise errors[0]
    model_id = shown_model_id(ctx.engine_for(options.model).status.model_id)
    headers = {"X-Failed-Items": str(len(errors))}
    if fmt == "coco":
        documents = [r for r in results if "error" not in r]
        return JSONResponse(
            documents[0] if len(documents) == 1 else {"videos": documents},
            headers=headers,
        )
    return JSONResponse({"model_id": model_id, "results": results}, headers=headers)


async def _one_clip(
    ctx: ApiContext,
    request: Request,
    client: str,
    intent: Any,
    options: RunOptions,
    upload: UploadFile,
    include: frozenset[str],
    fmt: str,
) -> dict[str, Any]:
    name = upload_name(upload.filename)
    settings = ctx.settings
    with tempfile.TemporaryDirectory(prefix="clip-") as folder:
        path = Path(folder) / "clip"
        await asyncio.to_thread(_save, upload, path)
        info = await asyncio.to_thread(probe, path, settings)
        job = ctx.services.prepare(intent, options, client, images=info.frames)
        video_out = Path(folder) / "annotated.mp4" if "overlay" in include else None
        work = run_clip(ctx.services, job, path, info, video_out=video_out)
        result = await until_disconnected(request, work)
        if fmt == "coco":
            return coco_video(result, name)
        body = await asyncio.to_thread(clip_to_dict, result, name)
        if video_out is not None and result.video_path:
            data = await asyncio.to_thread(video_out.read_bytes)
            body["annotated_video_mp4"] = base64.b64encode(data).decode("ascii")
    return body


def _save(upload: UploadFile, path: Path) -> None:
    upload.file.seek(0)
    with path.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            out.write(chunk)
