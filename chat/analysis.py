"""One image analysed in the chat: its steps, streamed answer, overlay, files.

Per turn: the photo decoded at upload (chat.photos) goes to the model through
the application service (core.service: generation in the queue, parsing and
mask placement beside it, never on the model worker); the turn is recorded
and the chat state saved (chat.session), then the answer is sent with an
overlay drawn on the display copy and one download button per export format;
a file is built only when its button is clicked (chat.downloads).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path

import chainlit as cl
from PIL import Image

from chat.closely import Pump, look_closely, tiled_summary
from chat.composed import composed_steps
from chat.downloads import download_actions
from chat.faults import remember_unsaved, take_unsaved_note
from chat.loading import ready_engine
from chat.options import ChatOptions, current_options
from chat.photos import Photo
from chat.runs import CHAT_PER_SESSION, chat_client
from chat.services import ChatServices
from chat.session import client_key, save_state
from chat.suggestions import suggestion_actions
from core.conversation import Conversation, ImageRecord, ResultSummary, Turn
from core.engine.queue import CHAT, Place
from core.errors import AppError, ClientQueueFullError
from core.export.downloads import Download, write_overlay
from core.render import render_overlay, to_jpeg_bytes
from core.reply import reply_markdown
from core.security import code_block_safe, escape_markdown
from core.service import Hooks, Job, Picture, RunOptions
from core.service.compose import composed
from core.types import GROUNDED_TASKS, AnalysisResult, Decoding, Intent


async def say(text: str) -> None:
    """Send ``text`` (markdown) as a new chat message (redacted on its way out:
    chat.security.install_outbound_filter)."""
    await cl.Message(content=text).send()


def run_options(services: ChatServices, options: ChatOptions) -> RunOptions:
    """The chat's settings as the service's RunOptions."""
    decoding = Decoding(
        preset=options.decoding, max_new_tokens=options.max_new_tokens or None
    )
    tiles = "auto" if options.look_closely else "off"
    return services.service.options(decoding, tiles, options.model or None)


def prepare(services: ChatServices, intent: Intent, records: list[ImageRecord]) -> Job:
    """``intent`` on ``records`` as one charged Job (core.service.prepare: one
    hit per photo and tile, per TOKENS_PER_HIT of the budget) for this
    session's user or address, in this session's queue turn."""
    options = current_options()
    client = client_key(cl.context.session, services.settings.forwarded_allow_ips)
    return services.service.prepare(
        intent,
        run_options(services, options),
        client,
        sizes=[record.size_wh for record in records],
        turn=chat_client(),
        kind=CHAT,
        cap=CHAT_PER_SESSION,
    )


class Waiting:
    """The live "waiting for the model" message, while a job waits its turn."""

    def __init__(self) -> None:
        self.message = cl.Message(content="")

    async def show(self, place: Place) -> None:
        self.message.content = waiting_text(place)
        await (
            self.message.update() if self.message.created_at else self.message.send()
        )

    async def clear(self) -> None:
        if self.message.content:
            with contextlib.suppress(Exception):
                await self.message.remove()
            self.message.content = ""


async def analyze_and_reply(
    services: ChatServices,
    conversation: Conversation,
    record: ImageRecord,
    job: Job,
    request: int = 0,
) -> None:
    """Run ``job`` on ``record`` through the service, record the turn (with
    ``request``: the message it belongs to, for "undo"), reply."""
    options = current_options()
    waiting = Waiting()
    # Text answers stream into their reply as words are generated.
    steps = composed(job.intent)  # "detect everything", "describe each object"
    grounded = job.intent.task in GROUNDED_TASKS or steps
    pump = None if grounded else StreamPump(cl.Message(""))
    try:
        engine = await ready_engine(services, job.options.model)
        picture = await read_photo(services, record)
        last = conversation.last_turn(record.id)
        result, summary = await _look(
            services, engine, job, (picture, last), pump, waiting
        )
        await waiting.clear()
    except ClientQueueFullError:
        await say(
            f"⚠️ You already have {CHAT_PER_SESSION} requests waiting for the "
            "model, so this one was not queued: wait for their answers, or press "
            "Stop to cancel them, then ask again."
        )
        return
    except AppError as exc:
        await waiting.clear()
        await say(f"⚠️ {escape_markdown(exc.message)}")
        return
    except asyncio.CancelledError:  # Stop or disconnect: the queue dropped it
        await waiting.clear()
        raise
    finally:
        if pump is not None:
            await pump.close()
    recorded = result.intent if steps else job.intent  # the detect/segment step
    conversation.record(record.id, recorded, summary, (), request)
    await save_state(services.persist)  # write-ahead: saved before it is seen
    await send_result(services, record, result, options, pump.message if pump else None)


async def _look(
    services: ChatServices,
    engine,
    job: Job,
    seen: tuple[Picture, Turn | None],
    pump: StreamPump | None,
    waiting: Waiting,
) -> tuple[AnalysisResult, ResultSummary]:
    """``job``'s model runs, shown as steps: a composed job's steps, tiles
    ("look closely"), or one look. ``seen``: the photo and its last turn."""
    picture, last = seen
    if composed(job.intent):

        async def look(step: Job) -> AnalysisResult:
            return await generate_and_place(
                services, engine, step, picture, None, waiting
            )

        result = await composed_steps(
            services, engine, job, picture, look, waiting.show, last
        )
        return result, ResultSummary.from_result(result)
    if job.options.grid(job.intent, picture.original_wh) != (1, 1):
        result = await look_closely(services, engine, job, picture, waiting.show)
        return result, tiled_summary(result)
    result = await generate_and_place(services, engine, job, picture, pump, waiting)
    return result, ResultSummary.from_result(result)


async def read_photo(services: ChatServices, record: ImageRecord) -> Picture:
    """The photo decoded at upload, in a "reading image" step: the model
    input copy, the sharper display copy (regions, tiles), the original size."""
    async with cl.Step(name="reading image", type="tool") as step:
        step.input = code_block_safe(record.name)  # shown as a code block
        photo = await asyncio.to_thread(stored_photo, services, record)
        width, height = record.size_wh
        model_w, model_h = photo.model_input.size
        step.output = f"{width}x{height} RGB (model input {model_w}x{model_h})"
    return Picture(photo.model_input, photo.display, record.size_wh)


async def generate_and_place(
    services: ChatServices,
    engine,
    job: Job,
    picture: Picture,
    pump: StreamPump | None,
    waiting: Waiting,
) -> AnalysisResult:
    """One look: "generating" (in the queue; prompt and raw answer shown
    exactly, as code blocks), then "decoding masks" (beside it)."""
    async with cl.Step(
        name="generating", type="llm", show_input="text", language="text"
    ) as step:
        step.input = code_block_safe(job.intent.prompt)
        hooks = Hooks(on_text=pump.on_text if pump else None, on_position=waiting.show)
        looks = await services.service.generate(job, picture, hooks, engine)
        raw_text = looks.generations[0].raw_text
        step.output = code_block_safe(raw_text) or "(empty answer)"
    await waiting.clear()
    async with cl.Step(name="decoding masks", type="tool") as step:
        result = await services.service.place(job, looks, engine)
        masks = sum(d.has_mask for d in result.detections)
        step.output = f"{len(result.detections)} object(s), {masks} mask(s)"
    return result


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


async def replay_turn(
    services: ChatServices, turn: Turn, record: ImageRecord
) -> AnalysisResult:
    """A past turn's result again, from its kept answer or objects (no new
    generation; core.service.replay), masks decoded beside the queue."""
    engine = None
    if not turn.summary.tiles:  # a tiled turn keeps its objects: no VAE
        engine = await ready_engine(services, current_options().model)
    return await services.service.replay(turn, record.size_wh, engine)


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
    if result.intent.task not in GROUNDED_TASKS:
        content = _with_note(content)  # a state that could not be saved
        if message is not None and message.streaming:
            message.content = content
            await message.send()  # ends the stream with the full reply
        else:
            await cl.Message(content=content).send()
        return
    overlay = await asyncio.to_thread(
        overlay_image, services, record, result, options, hidden
    )
    try:
        overlay_file = await asyncio.to_thread(
            write_overlay, Path(record.path), record.name, overlay
        )
    except OSError as exc:  # shown from memory; no downloads without a disk
        remember_unsaved(exc, "an overlay")
        image = cl.Image(
            content=to_jpeg_bytes(overlay),
            name=f"{Path(record.name).stem or 'image'}-overlay.jpg",
            display="inline",
            mime="image/jpeg",
        )
        actions = suggestion_actions(result)
        await cl.Message(_with_note(content), elements=[image], actions=actions).send()
        return
    kept = visible(result, hidden).detections
    await cl.Message(
        content=_with_note(content),
        elements=as_elements([overlay_file]),
        actions=[
            *suggestion_actions(result),
            *(download_actions(record) if kept else []),
        ],
    ).send()


def _with_note(content: str) -> str:
    """``content`` and, when this turn could not save something, the note."""
    note = take_unsaved_note()
    return f"{content}\n\n{note}" if note else content


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
    captions = tuple(
        c for n, c in enumerate(result.object_captions, 1) if n not in hidden
    )
    return replace(result, detections=kept, object_captions=captions)
