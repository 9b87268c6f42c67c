"""The MCP door for agents (tools in api/mcp_tools.py), on two transports.

- Streamable HTTP at ``/mcp`` on the app's own server: ``install_mcp(app,
  services)`` from the composition root (chainlit_app.py). Under API_KEY
  (``Authorization: Bearer <key>``, 401 without it), charged to the same
  RATE_LIMIT and run in the same fair queue as the chat and the REST API;
  image URLs under the REST API's SSRF rules; no local paths.
- stdio, for a desktop client that starts the server itself::

      python -m api.mcp_door

  Settings from the environment as for the app (MODEL_ID, VAE_PATH, ...);
  local file paths are accepted here (the user's own files). Logs go to
  stderr: stdout carries the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from mcp.server.fastmcp.server import StreamableHTTPASGIApp
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.mcp_tools import McpDoor, build_server
from api.routes import error_response
from api.service import ApiContext
from core.config import Settings
from core.errors import AppError
from core.security.auth import SessionTokens, api_identity
from core.service import Services

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
# The mcp library logs every request at INFO ("Terminating session: None").
CHATTY_LOGGERS = ("mcp.server.streamable_http", "mcp.server.lowlevel.server")


class ApiKeyGuard:
    """ASGI: refuses a request without valid credentials (API_KEY, or a login
    token with AUTH_USERS) with the REST API's JSON 401, before the MCP
    transport reads its body."""

    def __init__(self, app: Any, api: ApiContext) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        authorization = headers.get("authorization", b"").decode("latin-1")
        try:
            api_identity(
                authorization or None, None, self.api.settings.api_key, self.api.tokens
            )
        except AppError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install_mcp(
    app: Any, services: Services, tokens: SessionTokens | None = None
) -> None:
    """Serve the MCP tools at ``/mcp`` on ``app`` (in front of Chainlit's
    catch-all) and start the transport's session manager as a background
    task of the running loop (call from the app's startup). Idempotent."""
    if getattr(app.state, "paligemma_mcp", None) is not None:
        return
    api = ApiContext(services, tokens)
    quiet_library_logs()
    server = build_server(McpDoor(api))
    server.streamable_http_app()  # creates the session manager
    manager = server.session_manager
    route = Route(MCP_PATH, endpoint=ApiKeyGuard(StreamableHTTPASGIApp(manager), api))
    app.router.routes.insert(0, route)
    app.state.paligemma_mcp = asyncio.get_running_loop().create_task(
        _serve(manager), name="mcp-session-manager"
    )
    logger.info("MCP door (streamable HTTP) at %s", MCP_PATH)


def quiet_library_logs() -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


async def _serve(manager: Any) -> None:
    """Keep the session manager's task group running for the server's life."""
    async with manager.run():
        await asyncio.Event().wait()


def main() -> int:
    """``python -m api.mcp_door``: the tools over stdio, local paths allowed."""
    from logging_config import setup_logging

    settings = Settings.from_env()
    setup_logging(settings.log_level)
    quiet_library_logs()
    services = Services.for_process(settings)
    services.engines.start_background_load()
    server = build_server(McpDoor(ApiContext(services), local_files=True))
    logger.info("MCP door on stdio (model %s)", settings.model_id or "auto")
    server.run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
