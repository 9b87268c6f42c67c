"""The composition root: builds the process's one application service
(core.service.Services) and hands it to every door (the chat, the REST API,
the OpenAI door and the MCP door); registers every ``@cl.*`` handler. No
model code here.

The replies live in chat.replies.py / chat.analysis.py, the session state in
chat.session.py.
"""

from __future__ import annotations

import os

import chainlit as cl
from chainlit.data import get_data_layer
from chainlit.types import ThreadDict

from api.mcp_door import install_mcp
from api.routes import install_api
from chat.clicks import on_download
from chat.downloads import DOWNLOAD_ACTION
from chat.faults import flush_history, take_unsaved_note
from chat.options import DEFAULT_OPTIONS, ChatOptions, current_options, set_options
from chat.persist import history
from chat.persist.login import Login
from chat.replies import handle_message
from chat.runs import cancel_runs, cancel_unless_back, tracked
from chat.samples import attach_sample, starters
from chat.security import install_web_security
from chat.services import ChatServices
from chat.session import restore_state, save_state, send_chat_settings
from chat.suggestions import FOLLOW_UP, follow_up_message
from chat.uploads import start_sweeping
from core.config import Settings
from core.conversation import Conversation
from core.engine import get_engines
from core.images import set_decode_limit
from core.persist.service import Persistence
from core.security.auth import warn_if_exposed
from core.service import Services
from logging_config import setup_logging

SETTINGS = Settings.from_env()
setup_logging(SETTINGS.log_level)
install_web_security(SETTINGS)  # before Chainlit serves: docs/security.md
set_decode_limit(SETTINGS.max_concurrent_decodes)

# Before Chainlit checks for a login secret (right after importing this file).
PERSIST = Persistence.from_settings(SETTINGS)
LOGIN = None
if PERSIST.login:  # AUTH_USERS: login on whatever PERSIST says
    os.environ["CHAINLIT_AUTH_SECRET"] = PERSIST.auth_secret
    LOGIN = Login.from_persistence(PERSIST, SETTINGS)

# The one application service every door calls (core.service): the engines of
# MODELS (the first is the default), the one fair queue and the one rate
# limiter, shared by the chat and the API (one RATE_LIMIT per person).
SERVICE = Services.build(SETTINGS, get_engines(SETTINGS))
ENGINES = SERVICE.engines
SERVICES = ChatServices(service=SERVICE, persist=PERSIST)


@cl.on_app_startup
async def on_app_startup() -> None:
    from chainlit.config import FILES_DIRECTORY, config
    from chainlit.server import app

    FILES_DIRECTORY.mkdir(parents=True, exist_ok=True)  # uploads 500 without it
    start_sweeping()  # abandoned sessions' upload folders (chat.uploads)
    tokens = LOGIN.tokens if LOGIN else None
    install_api(app, services=SERVICE, tokens=tokens)
    install_mcp(app, SERVICE, tokens)  # the MCP door for agents at /mcp
    if LOGIN:
        LOGIN.install(app)
    warn_if_exposed(config.run.host, PERSIST.login, bool(SETTINGS.api_key))
    data_layer = get_data_layer()
    await history.start(PERSIST, app, data_layer)
    app.state.chat_history = data_layer if PERSIST.enabled else None  # /ready probes
    if SETTINGS.load_on_start:
        ENGINES.start_background_load()


@cl.data_layer
def data_layer():
    """Chainlit's data layer, or None (no history) when persistence is off."""
    return history.make_data_layer(PERSIST)


async def on_chat_resume(thread: ThreadDict) -> None:
    """A reloaded or reopened thread: its images, active image, turns, options."""
    await restore_state(PERSIST, thread, ENGINES.choices())


if LOGIN:  # registered only then: it turns Chainlit's login on
    cl.password_auth_callback(LOGIN.password_auth)
if PERSIST.enabled:
    cl.on_chat_resume(on_chat_resume)


@cl.set_starters
async def set_starters() -> list[cl.Starter]:
    return starters()  # each brings a sample photo (chat.samples)


@cl.on_chat_start
async def on_chat_start() -> None:
    cl.user_session.set("conversation", Conversation())
    set_options(DEFAULT_OPTIONS)
    await send_chat_settings(DEFAULT_OPTIONS, ENGINES.choices())
    for _, engine in ENGINES.engines():  # e.g. a checkpoint refused for memory
        if engine.status.state == "failed":
            await cl.Message(content=f"⚠️ {engine.status.error}").send()


@cl.on_settings_update
async def on_settings_update(values: dict) -> None:
    set_options(ChatOptions.from_values(values, base=current_options()))
    await save_state(PERSIST)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    await _answer(message)


@cl.action_callback(FOLLOW_UP)
async def on_follow_up(action: cl.Action) -> None:
    """A suggestion under an answer clicked: its phrase, as if typed."""
    if (message := await follow_up_message(action)) is not None:
        await _answer(message)


async def _answer(message: cl.Message) -> None:
    try:
        with tracked():  # Stop / disconnect cancel it (chat.runs)
            conversation = cl.user_session.get("conversation")
            await attach_sample(message, conversation.has_images)
            await handle_message(SERVICES, message)
    finally:
        await save_state(PERSIST)
        if note := take_unsaved_note():  # a disk fault not said with an answer
            await cl.Message(content=note).send()
        await flush_history(PERSIST)  # stored (or kept) before the task ends


@cl.action_callback(DOWNLOAD_ACTION)
async def on_download_clicked(action: cl.Action) -> None:
    """A download button: its file is built now (chat.clicks)."""
    await on_download(SERVICES, action)


@cl.on_stop
async def on_stop() -> None:
    """Stop: end every request of this session (the model stops at the next
    token and the worker is free)."""
    cancel_runs("stop")


@cl.on_chat_end
async def on_chat_end() -> None:
    """A disconnected session's requests leave the queue (or stop at the next
    token), unless it reconnects within DISCONNECT_GRACE_S (chat.runs)."""
    cancel_unless_back(SETTINGS.disconnect_grace_s)
