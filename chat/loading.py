"""The model a chat request needs, loaded: waits in a visible step meanwhile.

A request sent while the model loads (or, with LOAD_ON_START=false, the first
request, which starts the load) waits in a "loading the model" step and runs
when the model is ready, instead of being turned away (core.service's
``ready(..., wait=True)``; the API's doors refuse instead).
"""

from __future__ import annotations

import logging
import time

import chainlit as cl

from chat.services import ChatServices
from core.engine.base import Engine
from core.errors import ModelLoadingError
from core.security import shown_model_id

logger = logging.getLogger(__name__)

LOADING_STEP = "loading the model"


async def ready_engine(services: ChatServices, model_id: str | None) -> Engine:
    """The engine for ``model_id`` (the chat's model setting), once loaded.

    Starts the load when nothing started it (LOAD_ON_START=false) and waits,
    in a "loading the model" step, up to REQUEST_TIMEOUT_S. Raises AppError
    (the chat shows its message) for an unknown model, a failed load or a
    load that outlasts the timeout.
    """
    model_id = model_id or None
    try:
        return await services.service.ready(model_id, wait=False)
    except ModelLoadingError:
        pass  # loading (now started): wait for it in a step
    engine = services.engine_for(model_id)
    name = shown_model_id(model_id or engine.status.model_id)  # never a path
    async with cl.Step(name=LOADING_STEP, type="tool") as step:
        step.input = name
        started = time.perf_counter()
        try:
            engine = await services.service.ready(model_id, wait=True)
        except ModelLoadingError:
            timeout_s = services.settings.request_timeout_s
            step.output = f"still loading after {timeout_s:.0f} s"
            raise
        except Exception:
            step.output = "failed"
            raise
        step.output = f"{name} ready ({time.perf_counter() - started:.1f} s)"
    return engine
