"""Chainlit handlers: the chat UI. No model code here; everything calls core."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import chainlit as cl
from chainlit.input_widget import Select, Slider, Switch
from core.conversation import Conversation, ImageRecord
from core.intent import parse_intent

from core.config import Settings
from core.errors import AppError, UserInputError
from core.images import load_image
from core.model_manager import get_model_manager
from core.model_queue import ModelQueue
from core.pipeline import build_result, generate
from core.render import render_overlay, to_png_bytes
from core.reply import reply_markdown
from core.types import DECODING_PRESETS, AnalysisResult, Decoding, Intent
from logging_config import setup_logging

SETTINGS = Settings.from_env()
setup_logging(SETTINGS.log_level)
logger = logging.getLogger("chainlit_app")

MANAGER = get_model_manager(SETTINGS)
QUEUE = ModelQueue(max_pending=SETTINGS.queue_max, timeout_s=SETTINGS.request_timeout_s)

HELP = (
    "Attach a photo (📎 or drag and drop), then ask in plain words, for example:\n"
    "- *segment the left wheel*\n- *detect dog ; bike*\n"
    "- *find all the cars and people*\n- *what is written on the sign?*\n"
    "- *caption this in German*\n\n"
    "Then refine: *also the bike*, *only the left one*, *now as boxes*, *undo*, "
    "*on the first image*."
)


@cl.on_app_startup
async def on_app_startup() -> None:
    if SETTINGS.load_on_start:
        MANAGER.start_background_load()


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
    images_dir = Path(cl.context.session.files_dir) / "images"  # removed with it
    cl.user_session.set("conversation", Conversation())
    cl.user_session.set("images_dir", images_dir)
    cl.user_session.set("options", _default_options())
    await cl.ChatSettings(
        [
            Select(
                id="decoding",
                label="Decoding",
                values=list(DECODING_PRESETS),
                initial_value="greedy",
            ),
            Slider(
                id="max_new_tokens",
                label="Max new tokens (0 = automatic)",
                initial=0,
                min=0,
                max=1024,
                step=8,
            ),
            Slider(
                id="opacity", label="Mask opacity", initial=0.5, min=0, max=1, step=0.05
            ),
            Switch(id="show_labels", label="Show labels", initial=True),
            Switch(id="show_boxes", label="Show boxes", initial=True),
        ]
    ).send()
    status = MANAGER.status
    if status.state == "failed":
        await cl.Message(content=f"⚠️ {status.error}").send()


@cl.on_settings_update
async def on_settings_update(values: dict) -> None:
    cl.user_session.set("options", {**_default_options(), **values})


@cl.on_message
async def on_message(message: cl.Message) -> None:
    conversation: Conversation = cl.user_session.get("conversation")
    added = await _ingest_uploads(message, conversation)
    text = (message.content or "").strip()
    if not text:
        if added:
            names = ", ".join(record.name for record in added)
            await cl.Message(content=f"Got {names}. What should I look for?").send()
        elif not message.elements:
            await cl.Message(content=HELP).send()
        return
    if len(text) > SETTINGS.max_prompt_chars:
        await cl.Message(
            content=f"That message is {len(text)} characters long; please keep "
            f"requests under {SETTINGS.max_prompt_chars}."
        ).send()
        return
    intent = parse_intent(text, conversation.last_intent())
    if intent.action in ("clarify", "help"):
        await cl.Message(content=intent.message or HELP).send()
        return
    if not conversation.has_images:
        await cl.Message(
            content="Attach a photo first (📎 or drag and drop), then tell me what "
            "to look for. " + "Your request is kept: send the photo with no text "
            "and I'll ask again."
        ).send()
        return
    if intent.action == "undo":
        await _undo(conversation)
        return
    try:
        records = conversation.resolve(intent.image_ref)
    except UserInputError as exc:
        await cl.Message(content=exc.message).send()
        return
    for record in records:
        await _analyze_and_reply(conversation, record, intent)


async def _ingest_uploads(
    message: cl.Message, conversation: Conversation
) -> list[ImageRecord]:
    """Validate and keep every uploaded image; tell the user about bad ones."""
    added = []
    images_dir: Path = cl.user_session.get("images_dir")
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
            await cl.Message(content=f"**{name}**: {exc.message}").send()
            continue
        images_dir.mkdir(parents=True, exist_ok=True)
        stored = images_dir / f"{len(conversation.images) + 1:03d}.png"
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
    try:
        async with cl.Step(name="reading image", type="tool") as step:
            step.input = record.name
            image = await asyncio.to_thread(_open_stored, record.path)
            step.output = f"{image.width}x{image.height} RGB"

        waiting = cl.Message(content="")

        async def show_position(ahead: int) -> None:
            waiting.content = (
                f"⏳ Waiting for the model: {ahead} request(s) ahead of yours."
            )
            await (
                waiting.update()
                if waiting.id and waiting.created_at
                else waiting.send()
            )

        async with cl.Step(name="generating", type="llm") as step:
            step.input = intent.prompt
            generation = await QUEUE.submit(
                generate,
                image,
                intent,
                MANAGER,
                decoding,
                SETTINGS.max_new_tokens,
                on_position=show_position,
            )
            step.output = generation.raw_text or "(empty)"
        if waiting.content:
            await waiting.remove()

        async with cl.Step(name="decoding masks", type="tool") as step:
            result = await QUEUE.submit(build_result, image.size, generation, MANAGER)
            step.output = f"{len(result.detections)} object(s)"
    except AppError as exc:
        await cl.Message(content=f"⚠️ {exc.message}").send()
        return
    conversation.record(record.id, intent, result)
    await _send_result(record, result, options)


async def _send_result(
    record: ImageRecord, result: AnalysisResult, options: dict
) -> None:
    elements = []
    if result.detections or result.intent.task in ("detect", "segment"):
        image = await asyncio.to_thread(_open_stored, record.path)
        overlay = await asyncio.to_thread(
            render_overlay,
            image,
            result.detections,
            opacity=float(options["opacity"]),
            show_labels=bool(options["show_labels"]),
            show_boxes=bool(options["show_boxes"]),
        )
        overlay_path = Path(record.path).with_name(
            f"overlay-{record.id}-{id(result)}.png"
        )
        await asyncio.to_thread(overlay_path.write_bytes, to_png_bytes(overlay))
        elements.append(
            cl.Image(
                path=str(overlay_path), name=f"overlay-{record.name}", display="inline"
            )
        )
    await cl.Message(
        content=reply_markdown(result, record.name), elements=elements
    ).send()


async def _undo(conversation: Conversation) -> None:
    turn = conversation.undo()
    if turn is None:
        await cl.Message(content="Nothing to undo yet.").send()
        return
    record, result = turn
    await _send_result(record, result, cl.user_session.get("options"))


def _open_stored(path: str):
    with open(path, "rb") as handle:
        return load_image(handle.read(), max_pixels=SETTINGS.max_image_pixels)


def _default_options() -> dict:
    return {
        "decoding": "greedy",
        "max_new_tokens": 0,
        "opacity": 0.5,
        "show_labels": True,
        "show_boxes": True,
    }
