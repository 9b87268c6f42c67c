"""The model a chat request needs, loaded: waits in a visible step meanwhile.

A request sent while the model loads (or, with LOAD_ON_START=false, the first
request, which starts the load) waits in a "loading the model" step and runs
when the model is ready, instead of being turned away.
"""

from __future__ import annotations

import asyncio
import logging
import time

import chainlit as cl

from chat.services import ChatServices
from core.engine.base import Engine
from core.errors import AppError
from core.security import shown_model_id

logger = logging.getLogger(__name__)

LOADING_STEP = "loading the model"
POLL_S = 0.2  # how often the waiting request looks at the engine's state


async def ready_engine(services: ChatServices, model_id: str | None) -> Engine:
    """The engine for ``model_id`` (the chat's model setting), once loaded.

    Starts the load when nothing started it (LOAD_ON_START=false) and waits,
    in a "loading the model" step, up to REQUEST_TIMEOUT_S. Raises AppError
    (the chat shows its message) for an unknown model, a failed load or a
    load that outlasts the timeout.
    """
    engine = services.engine_for(model_id)
    state = engine.status.state
    if state == "ready":
        return engine
    if state == "failed":
        raise AppError(engine.status.error or "The model failed to load.")
    if state == "idle":
        logger.info("chat request needs %s: starting the load", engine.status.model_id)
        services.start_loading()
    name = shown_model_id(model_id or engine.status.model_id)  # never a path
    async with cl.Step(name=LOADING_STEP, type="tool") as step:
        step.input = name
        started = time.perf_counter()
        timeout_s = services.settings.request_timeout_s
        while engine.status.state in ("idle", "loading"):
            if time.perf_counter() - started > timeout_s:
                step.output = f"still loading after {timeout_s:.0f} s"
                raise AppError(
                    f"The model is still loading after {timeout_s:.0f} s "
                    "(REQUEST_TIMEOUT_S); send your request again in a moment."
                )
            await asyncio.sleep(POLL_S)  # the load runs on its own thread
        status = engine.status
        if status.state != "ready":
            step.output = "failed"
            raise AppError(status.error or "The model failed to load.")
        step.output = f"{name} ready ({time.perf_counter() - started:.1f} s)"
    return engine
