"""The MCP door's tools: ``detect``, ``segment``, ``caption``, ``ocr`` and
``ask`` on one image, through the application service (core.service).

Each tool takes ``image``: base64 (a ``data:image/...;base64,`` prefix is
accepted), an http(s) URL (fetched under the REST API's SSRF rules,
api/fetch.py), or, on the local stdio transport only, a file path. It answers
the result as structured content (labels, boxes ``[x1, y1, x2, y2]`` in the
original image's pixels, mask areas and COCO RLE) and, for detect/segment,
the overlay as PNG image content. The transports live in api/mcp_door.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from api.request import MB, decode_base64, detection_json
from api.service import ApiContext
from core.errors import AppError, UserInputError
from core.intent.text import run_intent
from core.intent.vocab import LANGUAGES
from core.render import render_overlay, to_png_bytes
from core.security.auth import api_identity
from core.service import Picture, client_id
from core.types import AnalysisResult, Intent

logger = logging.getLogger(__name__)

STDIO_CLIENT = "local:stdio"
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # a Windows path: C:\ or C:/
MAX_TARGETS = 20
PATH_REFUSED = (
    "Local file paths are read only over the local stdio transport "
    "(python -m api.mcp_door); over HTTP send the image as base64 or an "
    "http(s) URL."
)
INSTRUCTIONS = (
    "PaliGemma 2 vision tools. Give each tool an image (base64, an http(s) URL "
    "or, over stdio, a local path). detect/segment take targets (e.g. "
    '["dog", "bike"]) and answer boxes [x1, y1, x2, y2] in the original '
    "image's pixels (segment adds mask areas and COCO RLE) plus an overlay; "
    "caption/ocr/ask answer text."
)


@dataclass
class McpDoor:
    """What the tools share: the REST door's context (the one Services, API
    key and login tokens, the SSRF policy) and whether local paths may be
    read (``local_files``: the stdio transport only)."""

    api: ApiContext
    local_files: bool = False

    def client_of(self, ctx: Context) -> str:
        """Who pays (core.service.client_id): the API key's id or the HTTP
        client's address; the local stdio user is one client."""
        request = ctx.request_context.request if ctx.request_context else None
        if request is None:
            return STDIO_CLIENT
        settings = self.api.settings
        credential = api_identity(
            request.headers.get("authorization"),
            None,
            settings.api_key,
            self.api.tokens,
        )
        return client_id(
            request.scope, settings.forwarded_allow_ips, credential=credential
        )

    async def image_bytes(self, image: str) -> bytes:
        """The bytes ``image`` names: URL (SSRF rules), local path (stdio
        only) or base64."""
        if not isinstance(image, str) or not image.strip():
            raise UserInputError("'image' must be base64 data or an http(s) URL.")
        text = image.strip()
        if text.lower().startswith(("http://", "https://")):
            return await self.api.fetch(text)
        local = _local_path(text)
        if local is not None:
            if not self.local_files:
                raise UserInputError(PATH_REFUSED)
            return await asyncio.to_thread(_read_file, local)
        try:
            return decode_base64(text, self.api.settings.max_upload_mb * MB)
        except UserInputError as exc:
            raise UserInputError(
                "'image' is neither an http(s) URL nor valid base64 "
                f"({exc.message})" + ("" if self.local_files else f" {PATH_REFUSED}")
            ) from exc

    async def analyze(
        self, ctx: Context, image: str, intent: Intent
    ) -> tuple[Image.Image, AnalysisResult]:
        """``intent`` on ``image``: charged to the caller (429 past RATE_LIMIT),
        waited for while the model loads, run in the one fair queue."""
        services = self.api.services
        client = self.client_of(ctx)
        job = services.prepare(intent, services.options(), client)
        picture = await self.api.load(await self.image_bytes(image))
        engine = await services.ready(None, wait=True)
        result = await services.run(job, Picture(picture), engine=engine)
        return picture, result


def _local_path(text: str) -> Path | None:
    """The file ``text`` names (``file://``, ``/``, ``~``, ``./``, ``C:\\``),
    or None when it reads as base64. Decided from the text alone, so HTTP
    callers cannot probe which files exist. Base64 starting with ``/`` is a
    JPEG's (``/9j/``): no other image format's first byte encodes to ``/``."""
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    if text.startswith(("~", "./", "../", "\\")) or _DRIVE.match(text):
        return Path(text).expanduser()
    if text.startswith("/") and not text.startswith("/9j/"):
        return Path(text)
    return None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"Could not read {path} ({exc.strerror}).") from exc


def result_json(result: AnalysisResult) -> dict[str, Any]:
    """The structured content: task, prompt, size, answer and detections
    (``box_px`` in original pixels, ``area``, ``mask_rle`` COCO RLE)."""
    include = frozenset({"mask_rle"})
    return {
        "task": result.intent.task,
        "prompt": result.intent.prompt,
        "image_size_wh": list(result.image_size_wh),
        "answer": result.answer,
        "truncated": result.truncated,
        "detections": [detection_json(d, include) for d in result.detections],
    }


def tool_result(image: Image.Image, result: AnalysisResult) -> CallToolResult:
    """Structured JSON, the same JSON as text, and the overlay (detect/segment)."""
    body = result_json(result)
    content: list[Any] = [TextContent(type="text", text=json.dumps(body))]
    if result.intent.task in ("detect", "segment"):
        png = to_png_bytes(render_overlay(image, result.detections))
        data = base64.b64encode(png).decode("ascii")
        content.append(ImageContent(type="image", data=data, mimeType="image/png"))
    return CallToolResult(content=content, structuredContent=body)


def clean_targets(targets: list[str] | str) -> tuple[str, ...]:
    """Targets as PaliGemma reads them: 1..MAX_TARGETS short names."""
    items = targets.split(";") if isinstance(targets, str) else list(targets)
    names = tuple(" ".join(str(t).split()) for t in items if str(t).strip())
    if not names:
        raise UserInputError('Name what to look for, e.g. targets=["dog", "bike"].')
    if len(names) > MAX_TARGETS or any(len(n) > 100 or ";" in n for n in names):
        raise UserInputError(
            f"Send at most {MAX_TARGETS} targets of up to 100 characters, no ';'."
        )
    return names


def check_language(language: str) -> str:
    code = (language or "en").strip().lower()
    if code not in LANGUAGES:
        raise UserInputError(
            f"Unknown language {language!r}; use a code such as "
            f"{', '.join(sorted(LANGUAGES)[:8])}, ..."
        )
    return code


async def run_tool(
    door: McpDoor, ctx: Context, image: str, intent: Intent
) -> CallToolResult:
    """One tool call; an AppError becomes the tool's error text (isError)."""
    try:
        picture, result = await door.analyze(ctx, image, intent)
        return await asyncio.to_thread(tool_result, picture, result)
    except AppError as exc:
        logger.info("MCP %s refused: %s", intent.task, exc.message)
        raise ToolError(exc.message) from exc


def build_server(door: McpDoor) -> FastMCP:
    """The FastMCP server with the five tools (stateless streamable HTTP: no
    session to keep between requests). Host and Origin are checked by the
    app's own guards (ALLOWED_HOSTS, ALLOWED_ORIGINS)."""
    settings = door.api.settings
    server = FastMCP(
        "paligemma",
        instructions=INSTRUCTIONS,
        stateless_http=True,
        json_response=True,
        streamable_http_path="/mcp",
        max_request_body_size=settings.max_upload_mb * MB * 4 // 3 + 64 * 1024,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=False
        ),
    )

    @server.tool()
    async def detect(
        image: str, targets: list[str] | str, ctx: Context
    ) -> CallToolResult:
        """Find objects: boxes [x1, y1, x2, y2] in the image's pixels, labels,
        and an overlay image. ``targets``: what to find, e.g. ["dog", "bike"]."""
        intent = run_intent("detect", clean_targets(targets))
        return await run_tool(door, ctx, image, intent)

    @server.tool()
    async def segment(
        image: str, targets: list[str] | str, ctx: Context
    ) -> CallToolResult:
        """Outline objects: boxes, mask areas (pixels) and masks as COCO RLE,
        plus an overlay image. ``targets``: what to segment, e.g. ["car"]."""
        intent = run_intent("segment", clean_targets(targets))
        return await run_tool(door, ctx, image, intent)

    @server.tool()
    async def caption(image: str, ctx: Context, language: str = "en") -> CallToolResult:
        """A short caption of the image in ``language`` (a code: en, de, fr...)."""
        intent = run_intent("caption", lang=check_language(language))
        return await run_tool(door, ctx, image, intent)

    @server.tool()
    async def ocr(image: str, ctx: Context) -> CallToolResult:
        """The text written in the image."""
        return await run_tool(door, ctx, image, run_intent("ocr"))

    @server.tool()
    async def ask(
        image: str, question: str, ctx: Context, language: str = "en"
    ) -> CallToolResult:
        """Answer a question about the image, in ``language`` (a code)."""
        text = " ".join(str(question).split())
        if not text or len(text) > settings.max_prompt_chars:
            raise ToolError(
                f"Ask a question of 1 to {settings.max_prompt_chars} characters."
            )
        intent = run_intent("answer", lang=check_language(language), question=text)
        return await run_tool(door, ctx, image, intent)

    return server
