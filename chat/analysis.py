"""One image analysed in the chat: its steps, streamed answer, overlay, files.

Per turn: the photo decoded at upload (chat.photos) goes to the model through
the queue; parsing and mask placement run beside it (never on the model
worker); the turn is recorded and the chat state saved (chat.session), then
the answer is sent with an overlay drawn on the display copy and one download
button per export format; a file is built only when its button is clicked
(chat.downloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import replace
from pathlib import Path

import chainlit as cl
from PIL import Image

from chat.closely import Pump, kept_result, look_closely, look_grid, tiled_summary
from chat.downloads import download_actions
from chat.loading import ready_engine
from chat.options import ChatOptions
from chat.photos import Photo
from chat.runs import CHAT_PER_SESSION, chat_client
from chat.services import ChatServices
from chat.session import save_state
from core.conversation import Conversation, ImageRecord, ResultSummary, Turn
from core.engine.queue import CHAT, Place
from core.errors import AppError, ClientQueueFullError
from core.export.downloads import Download, write_overlay
from core.intent.region import region_to_pixels
from core.pipeline import Generation, build_result, generate
from core.render import render_overlay
from core.reply import reply_markdown
from core.security import code_block_safe, escape_markdown
from core.types import GROUNDED_TASKS, AnalysisResult, Decoding, Intent


async def say(text: str) -> None:
    """Send ``text`` (markdown) as a new chat message (redacted on its way out:
    chat.security.install_outbound_filter)."""
    await cl.Message(content=text).send()


async def analyze_and_reply(
    services: ChatServices,
    conversation: Conversation,
    record: ImageRecord,
    intent: Intent,
    request: int = 0,
) -> None:
    """Run ``intent`` on ``record`` through the queue, record the turn (with
    ``request``: the message it belongs to, for "undo"), reply."""
    options = cl.user_session.get("options")
    decoding = Decoding(
        preset=options.decoding,
        max_new_tokens=options.max_new_tokens or None,
    )
    waiting = cl.Message(content="")
    # Text answers stream into their reply as words are generated.
    pump = None if intent.task in GROUNDED_TASKS else StreamPump(cl.Message(""))

    async def show_position(place: Place) -> None:
        waiting.content = waiting_text(place)
        await (waiting.update() if waiting.created_at else waiting.send())

    stop = threading.Event()  # set by the queue when this task is cancelled

    try:
        engine = await ready_engine(services, options.model)
        async with cl.Step(name="reading image", type="tool") as step:
            step.input = code_block_safe(record.name)  # shown as a code block
            photo = await asyncio.to_thread(stored_photo, services, record)
            width, height = record.size_wh
            model_w, model_h = photo.model_input.size
            step.output = f"{width}x{height} RGB (model input {model_w}x{model_h})"
        grid = look_grid(options, intent, record.size_wh)
        if grid != (1, 1):  # "look closely": the whole photo and its tiles
            result = await look_closely(
                services,
                engine,
                record,
                photo,
                intent,
                decoding,
                grid,
                stop,
                show_position,
            )
            if waiting.content:
                await waiting.remove()
            conversation.record(record.id, intent, tiled_summary(result), (), request)
            await save_state(services.persist)  # before the answer is shown
            await send_result(services, record, result, options)
            return
        async with cl.Step(
            name="generating", type="llm", show_input="text", language="text"
        ) as step:  # prompt and raw answer shown exactly, as code blocks
            step.input = code_block_safe(intent.prompt)
            generation = await services.queue.submit(
                generate,
                # A region is cut from the sharper display copy.
                photo.display if intent.region is not None else photo.model_input,
                intent,
                engine,
                decoding,
                services.settings.max_new_tokens,
                pump.on_text if pump else None,
                stop,
                client=chat_client(),
                kind=CHAT,
                cap=CHAT_PER_SESSION,
                cancel=stop,
                source_wh=record.size_wh,
                on_position=show_position,
            )
            step.output = code_block_safe(generation.raw_text) or "(empty answer)"
        if waiting.content:
            await waiting.remove()
        result = await finish(services, generation, record.size_wh, engine)
    except ClientQueueFullError:
        await say(
            f"⚠️ You already have {CHAT_PER_SESSION} requests waiting for the "
            "model, so this one was not queued: wait for their answers, or press "
            "Stop to cancel them, then ask again."
        )
        return
    except AppError as exc:
        if waiting.content:
            await waiting.remove()
        await say(f"⚠️ {escape_markdown(exc.message)}")
        return
    except asyncio.CancelledError:  # Stop or disconnect: the queue dropped it
        if waiting.content:
            with contextlib.suppress(Exception):
                await waiting.remove()
        raise
    finally:
        if pump is not None:
            await pump.close()
    conversation.record(
        record.id, intent, ResultSummary.from_result(result), (), request
    )
    await save_state(services.persist)  # write-ahead: saved before it is seen
    await send_result(services, record, result, options, pump.message if pump else None)


def waiting_text(place: Place) -> str:
    """The live "waiting for the model" line: place in line, expected wait."""
    if place.ahead == 0:
        return "⏳ Your turn: the model is working on your request."
    wait = ""
    if place.wait_s is not None:
        wait = f", about {max(1, round(place.wait_s))} s"
    return (
        f"⏳ Waiting for the model: {place.ahead} request(s) ahead of yours{wait}. "
        "It runs when its turn comes; Stop cancels it."
    )


class StreamPump(Pump):
    """Carries answer pieces from the model thread into a streaming message.

    ``on_text`` is called on the model thread; a task in this session's
    context (Chainlit's emitter lives there) streams the pieces in order.
    """

    def __init__(self, message: cl.Message) -> None:
        self.message = message
        super().__init__(lambda piece: message.stream_token(escape_markdown(piece)))

    def on_text(self, piece: str) -> None:
        self.put(piece)


async def finish(
    services: ChatServices,
    generation: Generation,
    size_wh: tuple[int, int],
    engine=None,
) -> AnalysisResult:
    """Parse, decode masks and place them, in a step of its own.

    ``engine`` decodes the masks (its VAE); default: the chat's chosen model.
    Runs on a plain thread, not the model queue: the VAE is jitted JAX
    (thread-safe), so the next user's generation need not wait for it.
    """
    if engine is None:
        options = cl.user_session.get("options")
        engine = await ready_engine(services, options.model if options else None)
    async with cl.Step(name="decoding masks", type="tool") as step:
        result = await asyncio.to_thread(
            build_result,
            size_wh,
            generation,
            engine,
            max_detections=services.settings.max_detections,
        )
        masks = sum(d.has_mask for d in result.detections)
        step.output = f"{len(result.detections)} object(s), {masks} mask(s)"
    return result


async def replay_turn(
    services: ChatServices, turn: Turn, record: ImageRecord
) -> AnalysisResult:
    """A past turn's result again, from its kept answer (no new generation)."""
    if turn.summary.tiles:  # "look closely": merged objects, kept as they were
        pixels = services.settings.max_image_pixels  # the photo's size is claimed
        return await asyncio.to_thread(kept_result, turn, record, pixels)
    region = turn.intent.region
    generation = Generation(
        turn.intent,
        turn.summary.raw_text,
        turn.summary.truncated,
        0,
        0.0,
        region_to_pixels(region, record.size_wh) if region is not None else None,
    )
    return await finish(services, generation, record.size_wh)


async def send_result(
    services: ChatServices,
    record: ImageRecord,
    result: AnalysisResult,
    options: ChatOptions,
    message: cl.Message | None = None,
    hidden: tuple[int, ...] = (),
) -> None:
    """Send the reply, with its download buttons.

    A ``message`` that streamed the answer is completed. Grounded results get
    their overlay (display size) inline and, with objects, one download button
    per export format: the file is built when clicked (chat.downloads).
    ``hidden``: 1-based numbers of objects left out of the overlay, the table
    and the downloads (the others keep their numbers and colours).
    """
    content = reply_markdown(result, record.name, hidden)
    if message is not None and message.streaming:
        message.content = content
        await message.send()  # ends the stream with the full reply
        return
    if result.intent.task not in GROUNDED_TASKS:
        await cl.Message(content=content).send()
        return
    overlay_file = await asyncio.to_thread(
        _overlay_file, services, record, result, options, hidden
    )
    kept = visible(result, hidden).detections
    await cl.Message(
        content=content,
        elements=as_elements([overlay_file]),
        actions=download_actions(record) if kept else [],
    ).send()


def _overlay_file(
    services: ChatServices,
    record: ImageRecord,
    result: AnalysisResult,
    options: ChatOptions,
    hidden: tuple[int, ...] = (),
) -> Download:
    overlay = overlay_image(services, record, result, options, hidden)
    return write_overlay(Path(record.path), record.name, overlay)


def as_elements(downloads: list[Download]) -> list:
    """Chainlit elements: inline ``cl.Image`` or a ``cl.File`` per download."""
    return [
        cl.Image(path=str(d.path), name=d.name, display="inline")
        if d.inline
        else cl.File(path=str(d.path), name=d.name)
        for d in downloads
    ]


def stored_photo(services: ChatServices, record: ImageRecord) -> Photo:
    """The photo decoded at upload (from memory, or its stored copies)."""
    return services.photos.get(record.path, record.size_wh)


def overlay_image(
    services: ChatServices,
    record: ImageRecord,
    result: AnalysisResult,
    options: ChatOptions,
    hidden: tuple[int, ...] = (),
) -> Image.Image:
    """The display copy with ``result`` drawn as the chat options ask (RGB).

    Boxes and masks are in original pixels; they are scaled onto the copy.
    """
    return render_overlay(
        stored_photo(services, record).display,
        result.detections,
        opacity=options.opacity,
        show_labels=options.show_labels,
        show_boxes=options.show_boxes,
        hidden=hidden,
        source_wh=record.size_wh,
    )


def visible(result: AnalysisResult, hidden: tuple[int, ...]) -> AnalysisResult:
    """``result`` without the objects whose 1-based number is in ``hidden``."""
    if not hidden:
        return result
    kept = tuple(d for n, d in enumerate(result.detections, 1) if n not in hidden)
    return replace(result, detections=kept)
