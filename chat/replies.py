"""What the chat answers to one message: uploads, runs, undo, select, export."""

from __future__ import annotations

import asyncio
from pathlib import Path

import chainlit as cl
from chainlit.data import get_data_layer

from chat.analysis import (
    analyze_and_reply,
    as_elements,
    overlay_image,
    replay_turn,
    say,
    send_result,
    visible,
)
from chat.closely import looks
from chat.options import ChatOptions
from chat.persist import history
from chat.redraw import redraw
from chat.region import pick_region
from chat.services import ChatServices
from chat.session import client_key, save_state
from chat.uploads import (
    count_kept,
    drop_refused,
    free_name,
    quota_refusal,
    refusal_text,
)
from core.config import MB
from core.conversation import Conversation, ImageRecord
from core.errors import AppError
from core.export import ExportItem
from core.export.downloads import write_export_all
from core.export.formats import FORMATS
from core.intent import HELP_MESSAGE, parse_requests
from core.pipeline import token_budget
from core.ratelimit import work_cost
from core.render import to_png_bytes
from core.security import escape_markdown, inline_code
from core.types import GROUNDED_TASKS, Intent


async def handle_message(services: ChatServices, message: cl.Message) -> None:
    """Keep the message's photos, then answer its text (or a pending request)."""
    conversation: Conversation = cl.user_session.get("conversation")
    files, limit = len(message.elements or []), services.settings.max_files_per_message
    if files > limit:  # the browser enforces it too; other clients may not
        await say(
            f"That message carries {files} files; send at most {limit} per message "
            "(MAX_FILES_PER_MESSAGE). Nothing was kept: send them in smaller groups."
        )
        return
    added, refused = await ingest_uploads(services, message, conversation)
    if len(added) > 1:  # plain requests now run on each photo of this message
        conversation.set_group(added)
    if added:  # write-ahead: a crash from here on keeps the photos ...
        await save_state(services.persist)
        data_layer = get_data_layer()  # ... and the thread row
        await history.flush(services.persist, data_layer)
    if refused:  # told why; the message's request waits for the user
        return
    text = (message.content or "").strip()
    if not text:
        pending: Intent | None = cl.user_session.get("pending")
        if added and pending is not None:
            cl.user_session.set("pending", None)
            await _run(services, conversation, pending)
        elif added:
            names = ", ".join(escape_markdown(record.name) for record in added)
            await say(f"Got {names}. What should I look for?")
        elif not message.elements:
            await say(HELP_MESSAGE)
        return
    max_chars = services.settings.max_prompt_chars
    if len(text) > max_chars:
        await say(
            f"That message is {len(text):,} characters long; please keep requests "
            f"under {max_chars:,}."
        )
        return
    # In a thread: the first question loads the language identifier (~1 s).
    intents = await asyncio.to_thread(parse_requests, text, conversation.last_intent())
    if len(intents) > 1 and conversation.has_images:  # "... image 1 and ... image 2"
        request = conversation.new_request()  # one "undo" takes all parts back
        for intent in intents:
            await _run(services, conversation, intent, request)
        return
    intent = intents[0]
    if intent.action == "clarify" and intent.message:  # may quote the user's words
        await say(escape_markdown(intent.message))
    elif intent.action in ("clarify", "help"):
        await say(intent.message or HELP_MESSAGE)
    elif not conversation.has_images:
        if intent.action == "run":
            cl.user_session.set("pending", intent)
        await say(
            "Attach a photo first (📎 or drag and drop) and I'll run "
            f"{inline_code(intent.prompt or text)} on it; send the photo with no text."
        )
    elif intent.action == "undo":
        await _undo(services, conversation)
    elif intent.action == "export":
        await _guard(_export(services, conversation, intent))
    elif intent.action == "select":
        await _guard(_select(conversation, intent))
    elif intent.action == "pick_region":
        await _guard(pick_region(services, conversation))
    elif intent.action == "view":
        await _guard(redraw(services, conversation, intent))
    else:
        await _run(services, conversation, intent)


async def _run(
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
        options = cl.user_session.get("options") or ChatOptions()
        # One hit per image ("in all images"), and per tile when looking closely.
        charge(
            services, sum(looks(options, intent, r.size_wh) for r in records), intent
        )
    except AppError as exc:
        await say(escape_markdown(exc.message))
        return
    for number, record in enumerate(records, start=1):
        if len(records) > 1:
            name = escape_markdown(record.name)
            await say(f"Image {number} of {len(records)}: *{name}*")
        await analyze_and_reply(services, conversation, record, intent, request)


async def ingest_uploads(
    services: ChatServices, message: cl.Message, conversation: Conversation
) -> tuple[list[ImageRecord], bool]:
    """Validate and keep every uploaded image; tell the user about bad ones.

    Each upload is charged (RATE_LIMIT) and checked against the upload quotas
    (chat.uploads) before it is decoded. Returns the photos kept and whether
    the message's uploads were cut short by those limits (then the user has
    been told, and the rest of the message is not run).
    """
    settings = services.settings
    added = []
    if services.persist.enabled:  # kept with the thread, deleted with it
        images_dir = services.persist.thread_folder(cl.context.session.thread_id)
    else:  # Chainlit's session folder: removed when the session ends for good
        images_dir = Path(cl.context.session.files_dir) / "images"
    elements = [e for e in message.elements or [] if getattr(e, "path", None)]
    for number, element in enumerate(elements):
        name = element.name or Path(element.path).name
        refusal = await _upload_refusal(services)
        if refusal is not None:
            refused = elements[number:]
            names = [e.name or Path(e.path).name for e in refused]
            await say(refusal_text(names, [r.name for r in added], refusal))
            if not services.persist.enabled:  # with history, the thread shows them
                drop_refused([e.path for e in refused])
            return added, True
        images_dir.mkdir(parents=True, exist_ok=True)
        stored = free_name(images_dir, len(conversation.images) + 1)
        try:
            data = await asyncio.to_thread(Path(element.path).read_bytes)
            photo = await asyncio.to_thread(  # the only decode of this upload
                services.photos.ingest,
                data,
                stored,
                max_pixels=settings.max_image_pixels,
                max_bytes=settings.max_upload_mb * MB,
            )
        except AppError as exc:
            await say(f"**{escape_markdown(name)}**: {escape_markdown(exc.message)}")
            continue
        count_kept()
        added.append(conversation.add_image(name, str(stored), photo.original_wh))
    return added, False


async def _upload_refusal(services: ChatServices) -> str | None:
    """Why the next upload is not kept (quota, rate limit), or None; a
    kept upload takes one hit of the rate limit here, before decoding."""
    refusal = await quota_refusal(services.settings)
    if refusal is not None:
        return refusal
    try:
        charge(services, 1)
    except AppError as exc:
        return exc.message
    return None


def charge(services: ChatServices, images: int, intent: Intent | None = None) -> None:
    """Count this work against the chat's rate limit (RateLimitedError past it):
    one hit per image and per TOKENS_PER_HIT of the token budget, for the
    logged-in user or else the client's address, not the client-chosen
    session id."""
    budget = None
    if intent is not None:
        options: ChatOptions = cl.user_session.get("options") or ChatOptions()
        budget = (
            options.max_new_tokens
            or services.settings.max_new_tokens
            or token_budget(intent)
        )
    key = client_key(cl.context.session, services.settings.forwarded_allow_ips)
    services.limiter.hit(key, work_cost(images, budget))


async def _undo(services: ChatServices, conversation: Conversation) -> None:
    """Take back the last request: every photo it ran on shows its previous
    answer again (or is back to the plain photo)."""
    try:
        undone = conversation.undo_request()
    except AppError as exc:
        await say(escape_markdown(exc.message))
        return
    await save_state(services.persist)  # before the answers show it
    options = cl.user_session.get("options")
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


async def _export(
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
    options = cl.user_session.get("options")
    elements = await asyncio.to_thread(_export_files, services, results, options)
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
        )
        for record, result in results
    ]
    return as_elements(write_export_all(Path(results[0][0].path).parent, items))


async def _select(conversation: Conversation, intent: Intent) -> None:
    record = conversation.select(intent.image_ref)
    name = escape_markdown(record.name)
    await say(f"Now working on image {record.order}: *{name}*.")


async def _guard(coroutine) -> None:
    try:
        await coroutine
    except AppError as exc:
        await say(escape_markdown(exc.message))
