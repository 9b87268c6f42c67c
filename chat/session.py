"""One chat session's state: its settings panel, saving and restoring it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

import chainlit as cl
from chainlit.input_widget import Select, Slider, Switch
from chainlit.types import ThreadDict

from chat.faults import remember_unsaved
from chat.options import (
    DEFAULT_OPTIONS,
    MAX_NEW_TOKENS_RANGE,
    MAX_NEW_TOKENS_STEP,
    OPACITY_RANGE,
    ChatOptions,
    current_options,
    set_options,
)
from core.conversation import Conversation
from core.persist.recovery import sha256_of
from core.persist.service import ChatState, Persistence
from core.security import escape_markdown
from core.security.threads import canonical_thread_id
from core.service import AUTO_TILE_PX, client_id
from core.types import DECODING_PRESETS

logger = logging.getLogger(__name__)


def client_key(session, trusted_proxies: Sequence[str] = ()) -> str:
    """Who a chat session's work counts for (core.service.client_id):
    ``user:<name>`` when logged in, else ``ip:<address>`` of the socket (or
    what a proxy of FORWARDED_ALLOW_IPS forwarded); never the session id,
    which is the client's own choice."""
    user = getattr(session, "user", None)
    scope = (getattr(session, "environ", None) or {}).get("asgi.scope") or {}
    name = user.identifier if user is not None else None
    return client_id(scope, trusted_proxies, user=name)


def model_select(options: ChatOptions, models: dict[str, str]) -> list[Select]:
    """The model dropdown (label -> id of each loaded checkpoint, as the
    big_vision demo offers mix-224 / mix-448); none with a single model."""
    if len(models) < 2:
        return []
    ids = list(models.values())
    chosen = options.model if options.model in ids else ids[0]
    return [Select(id="model", label="Model", items=models, initial_value=chosen)]


async def send_chat_settings(
    options: ChatOptions, models: dict[str, str] | None = None
) -> None:
    """Show the settings panel with ``options``; ``models``
    (EngineRegistry.choices()) adds the model dropdown."""
    await cl.ChatSettings(
        [
            *model_select(options, models or {}),
            Select(
                id="decoding",
                label="Decoding",
                values=list(DECODING_PRESETS),
                initial_value=options.decoding,
            ),
            Slider(
                id="max_new_tokens",
                label="Max new tokens (0 = sized from the request)",
                initial=options.max_new_tokens,
                min=MAX_NEW_TOKENS_RANGE[0],
                max=MAX_NEW_TOKENS_RANGE[1],
                step=MAX_NEW_TOKENS_STEP,
            ),
            Slider(
                id="opacity",
                label="Mask opacity",
                initial=options.opacity,
                min=OPACITY_RANGE[0],
                max=OPACITY_RANGE[1],
                step=0.05,
            ),
            Switch(id="show_labels", label="Show labels", initial=options.show_labels),
            Switch(id="show_boxes", label="Show boxes", initial=options.show_boxes),
            Switch(
                id="look_closely",
                label="Look closely: small objects in big photos (tiles, slower)",
                description=(
                    "Detect/segment on the whole photo plus overlapping tiles "
                    f"when it is over {AUTO_TILE_PX} px; each tile is one more "
                    "model run."
                ),
                initial=options.look_closely,
            ),
        ]
    ).send()


async def save_state(persist: Persistence) -> None:
    """Persist this thread's images, turns and options (when history is on).

    Called right after a photo is accepted and before each answer is shown
    (write-ahead: a crash never loses what the user saw). The snapshot is
    taken here, on the event loop; the writes of a session land in call order.
    Not before the first message: until then the thread does not exist.
    """
    if not persist.enabled or not cl.context.session.has_first_interaction:
        return
    thread_id = cl.context.session.thread_id
    state = ChatState(
        cl.user_session.get("conversation"),
        current_options().to_dict(),
        cl.user_session.get("pending"),
    )
    lock = cl.user_session.get(_SAVE_LOCK)
    if lock is None:
        lock = asyncio.Lock()
        cl.user_session.set(_SAVE_LOCK, lock)
    try:
        data = persist.state_data(thread_id, state)
        written = (thread_id, json.dumps(data, sort_keys=True))  # a frozen copy
        async with lock:  # a turn saves ahead and again at its end: write once
            if cl.user_session.get(_SAVED) == written:
                return
            await asyncio.to_thread(persist.write_state, thread_id, data)
            cl.user_session.set(_SAVED, written)
    except OSError as exc:  # said with the answer (chat.faults)
        remember_unsaved(exc, f"the state of thread {thread_id}")
    except ValueError:
        logger.exception("could not save the state of this chat")


_SAVE_LOCK = "state_save_lock"
_SAVED = "state_saved"  # (thread id, data) last written, unchanged since


async def restore_state(
    persist: Persistence, thread: ThreadDict, models: dict[str, str] | None = None
) -> None:
    """A reloaded or reopened thread: its images, active image, turns, options.

    Never fails the resume: what could not be restored is said in the chat and
    the thread goes on with the rest (or fresh).
    """
    try:
        thread_id = canonical_thread_id(thread["id"])  # never folded: see docs
        state = await asyncio.to_thread(
            persist.load_state,
            thread_id,
            DEFAULT_OPTIONS.to_dict(),
            lambda: upload_names(persist, thread),
        )
    except ValueError as exc:
        logger.warning("not restoring thread %.80r: %s", thread["id"], exc)
        lost = (f"its saved state ({exc})",)
        state = ChatState(Conversation(), DEFAULT_OPTIONS.to_dict(), problems=lost)
    except OSError as exc:
        logger.exception("could not restore thread %s", thread["id"])
        lost = (f"its saved state ({exc})",)
        state = ChatState(Conversation(), DEFAULT_OPTIONS.to_dict(), problems=lost)
    cl.user_session.set("conversation", state.conversation)
    options = ChatOptions.from_values(state.options)
    set_options(options)
    cl.user_session.set("pending", state.pending)
    if state.problems:
        await cl.Message(content=restore_notice(state.problems)).send()
    await send_chat_settings(options, models)


def upload_names(persist: Persistence, thread: ThreadDict) -> dict[str, str]:
    """sha256 -> file name of each file stored with ``thread`` (its uploads
    among them): names a photo the saved state missed (core.persist.recovery).
    """
    names = {}
    root = persist.files_root.resolve()
    for element in thread.get("elements") or ():
        key = element.get("objectKey")
        path = (root / key).resolve() if key else None
        if path is None or not path.is_relative_to(root):
            continue
        try:
            names[sha256_of(path)] = str(element.get("name") or path.name)
        except OSError:
            continue  # a file the crash cut short: the photo is named by number
    return names


def restore_notice(problems: Sequence[str]) -> str:
    """The chat message naming what a resumed thread lost."""
    lost = "; ".join(escape_markdown(p) for p in problems)
    return (
        f"⚠️ Part of this chat could not be restored: {lost}. The chat goes on: "
        "attach a photo again to continue working on it."
    )
