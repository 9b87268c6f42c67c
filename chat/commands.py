"""The chat's commands, one table: each Action and the handler that answers it.

``dispatch`` answers one Intent: Action.RUN (the model request) runs on the
photo(s) it names; the other actions are chat commands answered without
generating (undo, export, redraw, select an image, pick a region, help,
clarify). A new command is one Action (core.types), one handler here and one
entry in COMMANDS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import chainlit as cl

from chat.analysis import (
    analyze_and_reply,
    as_elements,
    overlay_image,
    prepare,
    replay_turn,
    say,
    send_result,
    visible,
)
from chat.charge import charge
from chat.options import ChatOptions, current_options
from chat.redraw import redraw
from chat.region import pick_region
from chat.services import ChatServices
from chat.session import save_state
from core.conversation import Conversation
from core.errors import AppError
from core.export import ExportItem
from core.export.downloads import write_export_all
from core.export.formats import FORMATS
from core.intent import HELP_MESSAGE
from core.persist.disk import disk_problem
from core.render import to_png_bytes
from core.security import escape_markdown, inline_code
from core.types import GROUNDED_TASKS, Action, Intent

logger = logging.getLogger(__name__)

Handler = Callable[[ChatServices, Conversation, Intent], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    """How the chat answers one Action: ``handler`` (an AppError it raises is
    shown to the user); ``needs_photo``: without a photo, ask for one first."""

    handler: Handler
    needs_photo: bool = True


async def dispatch(
    services: ChatServices, conversation: Conversation, intent: Intent, text: str
) -> None:
    """Answer ``intent`` (parsed from the user's ``text``) from COMMANDS."""
    command = COMMANDS[intent.action]
    if command.needs_photo and not conversation.has_images:
        await _ask_for_photo(intent, text)
        return
    logger.debug("chat command %s", intent.action)
    try:
        await command.handler(services, conversation, intent)
    except AppError as exc:
        await say(escape_markdown(exc.message))


async def _ask_for_photo(intent: Intent, text: str) -> None:
    """No photo yet: a model request waits for it (sent with no text)."""
    if intent.runs_model:
        cl.user_session.set("pending", intent)
    steps = intent.then or intent.per_object  # composed: the user's words
    prompt = text if steps else intent.prompt or text
    await say(
        "Attach a photo first (📎 or drag and drop) and I'll run "
        f"{inline_code(prompt)} on it; send the photo with no text."
    )


async def run(
    services: ChatServices,
    conversation: Conversation,
    intent: Intent,
    request: int = 0,
) -> None:
    """``intent`` on its photo(s); the turns share ``request`` (default: a
    new one) so that "undo" takes them back together."""
    request = request or conversation.new_request()
    try:
        targets = conversation.resolve(intent.image_ref)
        records = targets if isinstance(targets, list) else [targets]
        # One hit per image ("in all images"), and per tile when looking closely.
        job = prepare(services, intent, records)
    except AppError as exc:
        await say(escape_markdown(exc.message))
        return
    for number, record in enumerate(records, start=1):
        name = escape_markdown(record.name)
        if len(records) > 1:
            await say(f"Image {number} of {len(records)}: *{name}*")
        try:
            await analyze_and_reply(services, conversation, record, job, request)
        except Exception as exc:  # one photo's failure must not lose the others
            logger.exception("chat: unexpected error on %s", record.name)
            await say(
                f"⚠️ *{name}*: unexpected error while analysing this image "
                f"({type(exc).__name__}); it is in the server log. Ask again, "
                "or try a smaller photo."
            )


async def run_together(
    services: ChatServices, conversation: Conversation, intents: tuple[Intent, ...]
) -> None:
    """Several requests of one message ("... image 1 and ... image 2"): one
    "undo" takes them all back."""
    request = conversation.new_request()
    for intent in intents:
        await run(services, conversation, intent, request)


async def clarify(_: ChatServices, __: Conversation, intent: Intent) -> None:
    """Say what to type; the message may quote the user's words (escaped)."""
    if intent.message:
        await say(escape_markdown(intent.message))
    else:
        await say(HELP_MESSAGE)


async def show_help(_: ChatServices, __: Conversation, intent: Intent) -> None:
    await say(intent.message or HELP_MESSAGE)


async def undo(services: ChatServices, conversation: Conversation, _: Intent) -> None:
    """Take back the last request: every photo it ran on shows its previous
    answer again (or is back to the plain photo)."""
    undone = conversation.undo_request()  # AppError: nothing to undo
    await save_state(services.persist)  # before the answers show it
    options = current_options()
    for record, turn in undone:
        where = f" on *{escape_markdown(record.name)}*" if len(undone) > 1 else ""
        if turn is None:
            await say(
                f"Undone{where}: back to the plain photo. What should I look for?"
            )
            continue
        try:
            charge(services, 1)  # the previous answer's masks are decoded again
            result = await replay_turn(services, turn, record)
        except AppError as exc:
            await say(f"⚠️ {escape_markdown(exc.message)}")
            continue
        await say(f"Undone{where}: this is the previous answer again.")
        await send_result(services, record, result, options, hidden=turn.hidden)


async def export(
    services: ChatServices, conversation: Conversation, intent: Intent
) -> None:
    """Downloads of the current result, or of every analysed image ("all")."""
    if intent.image_ref == "all":
        records = list(conversation.images)
    else:
        chosen = conversation.resolve(None)  # the photos of one message: each
        records = chosen if isinstance(chosen, list) else [chosen]
    turns = [(record, conversation.last_turn(record.id)) for record in records]
    turns = [(r, t) for r, t in turns if t and t.intent.task in GROUNDED_TASKS]
    if turns:
        charge(services, len(turns))  # every exported image is decoded again
    results = []
    for record, turn in turns:
        result = await replay_turn(services, turn, record)
        results.append((record, visible(result, turn.hidden)))
    if not results:
        await say(
            "Nothing to export yet: ask me to detect or segment something first, "
            "e.g. *segment the cat*."
        )
        return
    options = current_options()
    try:
        elements = await asyncio.to_thread(_export_files, services, results, options)
    except OSError as exc:  # the files are written before they are sent
        logger.error("could not write the export files: %s", exc)
        await say(
            f"⚠️ No export files: they could not be written ({disk_problem(exc)}). "
            "Ask again once the server's storage works (tell whoever runs it)."
        )
        return
    names = ", ".join(f"*{escape_markdown(record.name)}*" for record, _ in results)
    objects = sum(len(result.detections) for _, result in results)
    await cl.Message(
        content=f"Exports of {len(results)} image(s) ({names}), {objects} object(s): "
        f"{', '.join(fmt.label for fmt in FORMATS)}; the ZIP holds per-object "
        "mask PNGs, COCO JSON (RLE), YOLO segmentation labels and overlays.",
        elements=elements,
    ).send()


def _export_files(services: ChatServices, results: list, options: ChatOptions) -> list:
    items = [
        ExportItem(
            record.name,
            record.size_wh,
            result.detections,
            to_png_bytes(overlay_image(services, record, result, options)),
            captions=result.object_captions,
        )
        for record, result in results
    ]
    return as_elements(write_export_all(Path(results[0][0].path).parent, items))


async def select(_: ChatServices, conversation: Conversation, intent: Intent) -> None:
    record = conversation.select(intent.image_ref)
    name = escape_markdown(record.name)
    await say(f"Now working on image {record.order}: *{name}*.")


async def region(services: ChatServices, conversation: Conversation, _: Intent) -> None:
    await pick_region(services, conversation)


COMMANDS: dict[Action, Command] = {
    Action.RUN: Command(run),
    Action.CLARIFY: Command(clarify, needs_photo=False),
    Action.HELP: Command(show_help, needs_photo=False),
    Action.UNDO: Command(undo),
    Action.EXPORT: Command(export),
    Action.SELECT: Command(select),
    Action.PICK_REGION: Command(region),
    Action.VIEW: Command(redraw),
}
