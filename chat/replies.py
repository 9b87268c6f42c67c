"""What the chat answers to one message: its photos kept, then its text.

The text is parsed into Intents (core.intent) and answered from the command
table (chat.commands): the model request runs, chat commands answer without
the model.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import chainlit as cl

from chat.analysis import say
from chat.charge import upload_refusal
from chat.clips import greet_clip, is_clip, keep_clips, track_clip, wants_clip
from chat.commands import dispatch, run, run_together
from chat.faults import flush_history
from chat.services import ChatServices
from chat.session import save_state
from chat.uploads import (
    count_kept,
    drop_refused,
    free_name,
    refusal_text,
)
from core.config import MB
from core.conversation import Conversation, ImageRecord
from core.errors import AppError
from core.intent import HELP_MESSAGE, parse_requests
from core.persist.disk import disk_problem
from core.security import escape_markdown
from core.types import Intent

logger = logging.getLogger(__name__)


async def handle_message(services: ChatServices, message: cl.Message) -> None:
    """Keep the message's photos, then answer its text (or a pending request)."""
    conversation: Conversation = cl.user_session.get("conversation")
    if await _too_many_files(services, message):
        return
    clips = [
        e for e in message.elements or [] if getattr(e, "path", None) and is_clip(e)
    ]
    clip = None
    if clips:  # kept apart: a clip is never decoded as a photo
        message.elements = [e for e in message.elements if e not in clips]
        clip = await keep_clips(services, clips)
    added, refused = await ingest_uploads(services, message, conversation)
    if len(added) > 1:  # plain requests now run on each photo of this message
        conversation.set_group(added)
    if added:  # write-ahead: a crash from here on keeps the photos ...
        await save_state(services.persist)
        await flush_history(services.persist)  # ... and the thread row
    if refused:  # told why; the message's request waits for the user
        return
    text = (message.content or "").strip()
    if clips and not text and not added:
        if clip is not None:
            await greet_clip(clip)
        return
    if not text:
        await _answer_photos(services, conversation, added, bool(message.elements))
        return
    max_chars = services.settings.max_prompt_chars
    if len(text) > max_chars:
        await say(
            f"That message is {len(text):,} characters long; please keep requests "
            f"under {max_chars:,}."
        )
        return
    if await wants_clip(text, bool(clips), conversation.has_images):
        await track_clip(services, text)
        return
    # In a thread: the first question loads the language identifier (~1 s).
    intents = await asyncio.to_thread(parse_requests, text, conversation.last_intent())
    if len(intents) > 1 and conversation.has_images:  # "... image 1 and ... image 2"
        await run_together(services, conversation, intents)
        return
    await dispatch(services, conversation, intents[0], text)


async def _too_many_files(services: ChatServices, message: cl.Message) -> bool:
    """Refuse a message with more files than MAX_FILES_PER_MESSAGE (the browser
    enforces it too; other clients may not)."""
    files, limit = len(message.elements or []), services.settings.max_files_per_message
    if files <= limit:
        return False
    await say(
        f"That message carries {files} files; send at most {limit} per message "
        "(MAX_FILES_PER_MESSAGE). Nothing was kept: send them in smaller groups."
    )
    return True


async def _answer_photos(
    services: ChatServices,
    conversation: Conversation,
    added: list[ImageRecord],
    had_files: bool,
) -> None:
    """A message without text: run the request that waited for a photo, or
    ask what to look for (help when it carried nothing at all)."""
    pending: Intent | None = cl.user_session.get("pending")
    if added and pending is not None:
        cl.user_session.set("pending", None)
        await run(services, conversation, pending)
    elif added:
        names = ", ".join(escape_markdown(record.name) for record in added)
        await say(f"Got {names}. What should I look for?")
    elif not had_files:
        await say(HELP_MESSAGE)


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
        refusal = await upload_refusal(services)
        if refusal is not None:
            refused = elements[number:]
            names = [e.name or Path(e.path).name for e in refused]
            await say(refusal_text(names, [r.name for r in added], refusal))
            if not services.persist.enabled:  # with history, the thread shows them
                drop_refused([e.path for e in refused])
            return added, True
        try:
            images_dir.mkdir(parents=True, exist_ok=True)
            stored = free_name(images_dir, len(conversation.images) + 1)
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
        except OSError as exc:  # no path in what the user reads
            problem = disk_problem(exc)
            logger.error("could not keep the upload %r: %s", name, exc)
            shown = escape_markdown(name)
            await say(f"**{shown}**: not kept: {problem}. Send it again later.")
            continue
        count_kept()
        added.append(conversation.add_image(name, str(stored), photo.original_wh))
    return added, False
