"""What older clients of the services this API mirrors expect, unchanged.

The older PaliGemma segmentation service answered ``GET /`` (Accept:
application/json) with a welcome and ``POST /segment`` with a ``message``
list; the Sa2VA-style service's ``/health`` carries ``uptime`` (h:mm:ss),
``model_path`` and ``endpoints``. docs/api.md shows both clients working.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.routing import Match

WELCOME = "Welcome to the PaliGemma Segmentation API!"  # the older service's
ENDPOINTS = {  # /health's Sa2VA-style list: path -> "METHOD - what"
    "/": "GET - welcome JSON (browsers, which accept text/html, get the chat)",
    "/health": "GET - Health check and server status",
    "/ready": "GET - 200 once the model and the VAE are loaded",
    "/segment": "POST - PaliGemma segmentation (multipart prompt + image_file)",
    "/process": "POST - Process image with text prompt",
    "/v1/analyze": "POST - one or more images as JSON, COCO, YOLO or a ZIP",
    "/mcp": "POST - MCP tools for agents (streamable HTTP; docs/api.md)",
}


class JsonClientRoute(APIRoute):
    """Matches only requests that do not accept HTML: API clients (curl's and
    python-requests' ``*/*``, ``application/json``) get JSON, while browsers,
    which always list ``text/html``, fall through to the chat page."""

    def matches(self, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        match, child = super().matches(scope)
        if match is Match.NONE:
            return match, child
        headers = dict(scope.get("headers") or [])
        accept = headers.get(b"accept", b"").decode("latin-1").lower()
        if "text/html" not in accept:
            return match, child
        return Match.NONE, {}


def legacy_message(masks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The older PaliGemma service's ``message`` list from ``segment_masks``:
    ``[{"mask": <base64 PNG, or None for a box>, "coordinates": [x1, y1, x2,
    y2]}]`` in original-image pixels."""
    return [{"mask": m["mask"], "coordinates": m["coordinates"]} for m in masks]


def uptime_text(seconds: float) -> str:
    """``h:mm:ss`` as the Sa2VA-style service reports uptime (hours may pass 24)."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
