"""Talk to the MCP door with the ``mcp`` package's own client (as an agent
does): streamable HTTP against a running server, or stdio against
``python -m api.mcp_door`` started as a child process."""

from __future__ import annotations

import asyncio
import base64
import io
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


async def _http_session(url: str, headers: dict[str, str] | None, work) -> Any:
    async with streamablehttp_client(f"{url}/mcp", headers=headers) as (r, w, _):
        async with ClientSession(r, w) as session:
            await session.initialize()
            return await work(session)


def http_tools(url: str, headers: dict[str, str] | None = None) -> list[Any]:
    """The tools the server at ``url`` lists."""

    async def work(session: ClientSession) -> list[Any]:
        return (await session.list_tools()).tools

    return asyncio.run(_http_session(url, headers, work))


def http_call(
    url: str, tool: str, arguments: dict[str, Any], headers: dict[str, str] | None
) -> CallToolResult:
    """One tool call over streamable HTTP."""

    async def work(session: ClientSession) -> CallToolResult:
        return await session.call_tool(tool, arguments)

    return asyncio.run(_http_session(url, headers, work))


def stdio_calls(
    env: dict[str, str], calls: list[tuple[str, dict[str, Any]]], cwd: Path = ROOT
) -> list[CallToolResult]:
    """Start ``python -m api.mcp_door`` in ``cwd`` with ``env`` (as a desktop
    client does) and make ``calls`` in order."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "api.mcp_door"], env=env, cwd=str(cwd)
    )

    async def run() -> list[CallToolResult]:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return [await session.call_tool(t, a) for t, a in calls]

    return asyncio.run(run())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def error_text(result: CallToolResult) -> str:
    """The text of a tool's error answer (isError must be set)."""
    assert result.isError, result
    return " ".join(c.text for c in result.content if isinstance(c, TextContent))


def overlay(result: CallToolResult) -> Image.Image:
    """The one image content of a result, decoded (it must be a real image)."""
    (image,) = [c for c in result.content if isinstance(c, ImageContent)]
    assert image.mimeType in ("image/png", "image/jpeg")
    picture = Image.open(io.BytesIO(base64.b64decode(image.data)))
    picture.load()
    assert picture.format == image.mimeType.split("/")[1].upper()
    return picture
