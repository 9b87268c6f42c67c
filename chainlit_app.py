"""Chainlit handlers: the chat UI. No model code here; everything calls core."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import chainlit as cl
from chainlit.data import get_data_layer
from chainlit.input_widget import Select, Slider, Switch
from chainlit.types import ThreadDict

from core.config import Settings
from core.conversation import Conversation, ImageRecord, ResultSummary, Turn
from core.downloads import Download, write_export_all, write_result_downloads
from core.errors import AppError
from core.export import ExportItem
from core.images import load_image
from core.intent import parse_intent
from core.model_manager import get_model_manager
from core.model_queue import ModelQueue
from core.persistence import ChatState, Persistence
from core.pipeline import Generation, build_result, generate
from core.ratelimit import RateLimiter
from core.render import render_overlay, to_png_bytes
from core.reply import HELP, reply_markdown
from core.types import (
    DECODING_PRESETS,
    GROUNDED_TASKS,
    AnalysisResult,
    Decoding,
    Intent,
)
from logging_config import setup_logging

SETTINGS = Settings.from_env()
setup_logging(SETTINGS.log_level)
logger = logging.getLogger("chainlit_app")

# Before Chainlit checks for a login secret (right after importing this file).
PERSIST = Persistence.from_settings(SETTINGS)
if PERSIST.enabled:
    os.environ["CHAINLIT_AUTH_SECRET"] = PERSIST.auth_secret
    CHECKER = PERSIST.checker()

MANAGER = get_model_manager(SETTINGS)
QUEUE = ModelQueue(
    max_pending=SETTINGS.queue_max,
    timeout_s=SETTINGS.request_timeout_s,
    workers=SETTINGS.model_workers,
)
CHAT_LIMITER = RateLimiter(SETTINGS.rate_limit_per_min)
DEFAULT_OPTIONS = {
    "decoding": "greedy",
    "max_new_tokens": 0,
    "opacity": 0.5,
    "show_labels": True,
    "show_boxes": True,
}


@cl.on_app_startup
async def on_app_startup() -> None:
    from chainlit.config import FILES_DIRECTORY
    from chainlit.server import app

    from core.api import install_api

    FILES_DIRECTORY.mkdir(parents=True, exist_ok=True)  # uploads 500 without it
    install_api(app, manager=MANAGER, queue=QUEUE, settings=SETTINGS)
    await PERSIST.start(app, get_data_layer())
    if SETTINGS.load_on_start:
        MANAGER.start_background_load()


@cl.data_layer
def data_layer():
    """Chainlit's data layer, or None (no history) when persistence is off."""
    return PERSIST.make_data_layer()


async def password_auth(username: str, password: str) -> cl.User | None:
    if await asyncio.to_thread(CHECKER.check, username, password):
        return cl.User(identifier=username.strip(), metadata={"provider": "password"})
    return None


async def on_chat_resume(thread: ThreadDict) -> None:
    """A reloaded or reopened thread: its images, active image, turns, options."""
    try:
        state = await asyncio.to_thread(
            PERSIST.load_state, thread["id"], DEFAULT_OPTIONS
        )
    except (OSError, ValueError) as exc:
        logger.exception("could not restore thread %s", thread["id"])
        state = ChatState(Conversation(), dict(DEFAULT_OPTIONS))
        await _say(f"⚠️ This chat's photos could not be restored ({exc}).")
    cl.user_session.set("conversation", state.conversation)
    cl.user_session.set("options", state.options)
    cl.user_session.set("pending", state.pending)
    await _send_chat_settings(state.options)


if PERSIST.enabled:  # registered only then: either one turns Chainlit's login on
    cl.password_auth_callback(password_auth)
    cl.on_chat_resume(on_chat_resume)


@cl.set_starters
async def set_starters() -> list[cl.Starter]:
    return [
        cl.Starter(label="Segment", message="segment the cat"),
        cl.Starter(label="Detect several things", message="detect dog ; bike"),
        cl.Starter(label="Caption", message="caption this"),
        cl.Starter(label="Read text", message="read the text"),
    ]


@cl.on_chat_start
async def on_chat_start() -> None:
    cl.user_session.set("conversation", Conversation())
    cl.user_session.set("options", dict(DEFAULT_OPTIONS))
    await _send_chat_settings(DEFAULT_OPTIONS)
    if MANAGER.status.state == "failed":
        await cl.Message(content=f"⚠️ {MANAGER.status.error}").send()


async def _send_chat_settings(options: dict) -> None:
    await cl.ChatSettings(
        [
            Select(
                id="decoding",
                label="Decoding",
                values=list(DECODING_PRESETS),
                initial_value=options["decoding"],
            ),
            Slider(
                id="max_new_tokens",
                label="Max new tokens (0 = sized from the request)",
                initial=options["max_new_tokens"],
                min=0,
                max=1024,
                step=8,
            ),
            Slider(
                id="opacity",
                label="Mask opacity",
                initial=options["opacity"],
                min=0,
                max=1,
                step=0.05,
            ),
            Switch(
                id="show_labels", label="Show labels", initial=options["show_labels"]
            ),
            Switch(id="show_boxes", label="Show boxes", initial=options["show_boxes"]),
        ]
    ).send()


@cl.on_settings_update
async def on_settings_update(values: dict) -> None:
    cl.user_session.set("options", {**DEFAULT_OPTIONS, **values})
    await _save_state()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    try:
        await _handle_message(message)
    finally:
        await _save_state()
        await PERSIST.flush(get_data_layer())  # stored before the task ends


async def _save_state() -> None:
    """Persist this thread's images, turns and options (when history is on).

    Not before the first message: until then the thread does not exist.
    """
    if not PERSIST.enabled or not cl.context.session.has_first_interaction:
        return
    state = ChatState(
        cl.user_session.get("conversation"),
        cl.user_session.get("options"),
        cl.user_session.get("pending"),
    )
    try:
        await asyncio.to_thread(PERSIST.save_state, cl.context.session.thread_id, state)
    except (OSError, ValueError):
        logger.exception("could not save the state of this chat")


async def _handle_message(message: cl.Message) -> None:
    conversation: Conversation = cl.user_session.get("conversation")
    added = await _ingest_uploads(message, conversation)
    text = (message.content or "").strip()
    if not text:
        pending: Intent | None = cl.user_session.get("pending")
        if added and pending is not None:
            cl.user_session.set("pending", None)
            await _run(conversation, pending)
        elif added:
            names = ", ".join(record.name for record in added)
            await _say(f"Got {names}. What should I look for?")
        elif not message.elements:
            await _say(HELP)
        return
    if len(text) > SETTINGS.max_prompt_chars:
        await _say(
            f"That message is {len(text):,} characters long; please keep requests "
            f"under {SETTINGS.max_prompt_chars:,}."
        )
        return
    intent = parse_intent(text, conversation.last_intent())
    if intent.action in ("clarify", "help"):
        await _say(intent.message or HELP)
    elif not conversation.has_images:
        if intent.action == "run":
            cl.user_session.set("pending", intent)
        await _say(
            "Attach a photo first (📎 or drag and drop) and I'll run "
            f"`{intent.prompt or text}` on it; send the photo with no text."
        )
    elif intent.action == "undo":
        await _undo(conversation)
    elif intent.action == "export":
        await _guard(_export(conversation, intent))
    elif intent.action == "select":
        await _guard(_select(conversation, intent))
    else:
        await _run(conversation, intent)


async def _run(conversation: Conversation, intent: Intent) -> None:
    try:
        CHAT_LIMITER.hit(cl.context.session.id)
        targets = conversation.resolve(intent.image_ref)
    except AppError as exc:
        await _say(exc.message)
        return
    records = targets if isinstance(targets, list) else [targets]
    for number, record in enumerate(records, start=1):
        if len(records) > 1:
            await _say(f"Image {number} of {len(records)}: *{record.name}*")
        await _analyze_and_reply(conversation, record, intent)


async def _ingest_uploads(
    message: cl.Message, conversation: Conversation
) -> list[ImageRecord]:
    """Validate and keep every uploaded image; tell the user about bad ones."""
    added = []
    if PERSIST.enabled:  # kept with the thread, deleted with it
        images_dir = PERSIST.thread_folder(cl.context.session.thread_id)
    else:  # Chainlit's session folder: removed when the session ends for good
        images_dir = Path(cl.context.session.files_dir) / "images"
    for element in message.elements or []:
        path = getattr(element, "path", None)
        if not path:
            continue
        name = element.name or Path(path).name
        try:
            data = await asyncio.to_thread(Path(path).read_bytes)
            image = await asyncio.to_thread(
                load_image,
                data,
                max_pixels=SETTINGS.max_image_pixels,
                max_bytes=SETTINGS.max_upload_mb * 1024 * 1024,
            )
        except AppError as exc:
            await _say(f"**{name}**: {exc.message}")
            continue
        images_dir.mkdir(parents=True, exist_ok=True)
        stored = _free_name(images_dir, len(conversation.images) + 1)
        await asyncio.to_thread(image.save, stored, format="PNG", compress_level=1)
        added.append(conversation.add_image(name, str(stored), image.size))
    return added


async def _analyze_and_reply(
    conversation: Conversation, record: ImageRecord, intent: Intent
) -> None:
    options = cl.user_session.get("options")
    decoding = Decoding(
        preset=options["decoding"],
        max_new_tokens=int(options["max_new_tokens"]) or None,
    )
    waiting = cl.Message(content="")
    # Text answers stream into their reply as words are generated.
    pump = None if intent.task in GROUNDED_TASKS else _StreamPump(cl.Message(""))

    async def show_position(ahead: int) -> None:
        waiting.content = (
            f"⏳ Waiting for the model: {ahead} request(s) ahead of yours."
        )
        await (waiting.update() if waiting.created_at else waiting.send())

    try:
        async with cl.Step(name="reading image", type="tool") as step:
            step.input = record.name
            image = await asyncio.to_thread(_open_stored, record.path)
            step.output = f"{image.width}x{image.height} RGB"
        async with cl.Step(name="generating", type="llm", show_input="text") as step:
            step.input = intent.prompt
            generation = await QUEUE.submit(
                generate,
                image,
                intent,
                MANAGER,
                decoding,
                SETTINGS.max_new_tokens,
                pump.on_text if pump else None,
                on_position=show_position,
            )
            step.output = generation.raw_text or "(empty answer)"
        if waiting.content:
            await waiting.remove()
        result = await _finish(generation, image.size)
    except AppError as exc:
        if waiting.content:
            await waiting.remove()
        await _say(f"⚠️ {exc.message}")
        return
    finally:
        if pump is not None:
            await pump.close()
    conversation.record(record.id, intent, ResultSummary.from_result(result))
    await _send_result(record, result, options, pump.message if pump else None)


class _StreamPump:
    """Carries answer pieces from the model thread into a streaming message.

    ``on_text`` is called on the model thread; a task in this session's
    context (Chainlit's emitter lives there) streams the pieces in order.
    """

    def __init__(self, message: cl.Message) -> None:
        self.message = message
        self._loop = asyncio.get_running_loop()
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump())

    def on_text(self, piece: str) -> None:
        self._loop.call_soon_threadsafe(self._pieces.put_nowait, piece)

    async def close(self) -> None:
        self._pieces.put_nowait(None)
        await self._task

    async def _pump(self) -> None:
        while (piece := await self._pieces.get()) is not None:
            await self.message.stream_token(piece)


async def _finish(generation: Generation, size_wh: tuple[int, int]) -> AnalysisResult:
    """Parse, decode masks and place them, inside a step of its own."""
    async with cl.Step(name="decoding masks", type="tool") as step:
        result = await QUEUE.submit(build_result, size_wh, generation, MANAGER)
        masks = sum(d.mask is not None for d in result.detections)
        step.output = f"{len(result.detections)} object(s), {masks} mask(s)"
    return result


async def _send_result(
    record: ImageRecord,
    result: AnalysisResult,
    options: dict,
    message: cl.Message | None = None,
) -> None:
    """Send the reply; a ``message`` that streamed the answer is completed."""
    elements: list = []
    if result.intent.task in GROUNDED_TASKS:
        elements = await asyncio.to_thread(_result_files, record, result, options)
    content = reply_markdown(result, record.name)
    if message is not None and message.streaming:
        message.content = content
        await message.send()  # ends the stream with the full reply
    else:
        await cl.Message(content=content, elements=elements).send()


def _result_files(record: ImageRecord, result: AnalysisResult, options: dict) -> list:
    """Overlay (shown inline) and downloads of one result, as Chainlit elements."""
    item = ExportItem(record.name, record.size_wh, result.detections)
    overlay = _overlay(record, result, options)
    return _elements(write_result_downloads(Path(record.path), item, overlay))


def _elements(downloads: list[Download]) -> list:
    return [
        cl.Image(path=str(d.path), name=d.name, display="inline")
        if d.inline
        else cl.File(path=str(d.path), name=d.name)
        for d in downloads
    ]


def _overlay(record: ImageRecord, result: AnalysisResult, options: dict):
    return render_overlay(
        _open_stored(record.path),
        result.detections,
        opacity=float(options["opacity"]),
        show_labels=bool(options["show_labels"]),
        show_boxes=bool(options["show_boxes"]),
    )


async def _undo(conversation: Conversation) -> None:
    try:
        turn = conversation.undo()
    except AppError as exc:
        await _say(exc.message)
        return
    if turn is None:
        await _say("Undone: back to the plain photo. What should I look for?")
        return
    record = conversation.resolve(None)
    try:
        result = await _replay_turn(turn, record)
    except AppError as exc:
        await _say(f"⚠️ {exc.message}")
        return
    await _say("Undone: this is the previous answer again.")
    await _send_result(record, result, cl.user_session.get("options"))


async def _replay_turn(turn: Turn, record: ImageRecord) -> AnalysisResult:
    """A past turn's result again, from its kept answer (no new generation)."""
    generation = Generation(
        turn.intent, turn.summary.raw_text, turn.summary.truncated, 0, 0.0
    )
    return await _finish(generation, record.size_wh)


async def _export(conversation: Conversation, intent: Intent) -> None:
    """Downloads of the current result, or of every analysed image ("all")."""
    if intent.image_ref == "all":
        records = list(conversation.images)
    else:
        records = [conversation.resolve(None)]
    results = []
    for record in records:
        turn = conversation.last_turn(record.id)
        if turn is not None and turn.intent.task in GROUNDED_TASKS:
            results.append((record, await _replay_turn(turn, record)))
    if not results:
        await _say(
            "Nothing to export yet: ask me to detect or segment something first, "
            "e.g. *segment the cat*."
        )
        return
    options = cl.user_session.get("options")
    elements = await asyncio.to_thread(_export_files, results, options)
    names = ", ".join(f"*{record.name}*" for record, _ in results)
    objects = sum(len(result.detections) for _, result in results)
    await cl.Message(
        content=f"Exports of {len(results)} image(s) ({names}), {objects} object(s): "
        "per-object mask PNGs, COCO JSON (RLE), YOLO segmentation labels and "
        "overlays.",
        elements=elements,
    ).send()


def _export_files(results: list, options: dict) -> list:
    items = [
        ExportItem(
            record.name,
            record.size_wh,
            result.detections,
            to_png_bytes(_overlay(record, result, options)),
        )
        for record, result in results
    ]
    return _elements(write_export_all(Path(results[0][0].path).parent, items))


async def _select(conversation: Conversation, intent: Intent) -> None:
    record = conversation.select(intent.image_ref)
    await _say(f"Now working on image {record.order}: *{record.name}*.")


async def _guard(coroutine) -> None:
    try:
        await coroutine
    except AppError as exc:
        await _say(exc.message)


async def _say(text: str) -> None:
    await cl.Message(content=text).send()


def _free_name(folder: Path, number: int) -> Path:
    while (folder / f"{number:03d}.png").exists():  # a resumed thread's older ones
        number += 1
    return folder / f"{number:03d}.png"


def _open_stored(path: str):
    with open(path, "rb") as handle:
        return load_image(handle.read(), max_pixels=SETTINGS.max_image_pixels)
