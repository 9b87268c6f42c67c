"""'draw a region': the photo as a RegionSelect element to drag a rectangle on.

The element (public/elements/RegionSelect.jsx) sends "region x1,y1 to
x2,y2" in original pixels back as a user message; core.intent turns that into
the last request limited to that region.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import chainlit as cl
from PIL import Image

from chat.analysis import stored_photo
from chat.services import ChatServices
from core.conversation import Conversation
from core.render import to_jpeg_bytes
from core.security import escape_markdown, inline_code

logger = logging.getLogger(__name__)

PREVIEW_SIDE = 1024  # the element shows a copy at most this long


def preview_data_url(display: Image.Image) -> str:
    """A JPEG data URL of the photo's display copy, longest side <= PREVIEW_SIDE."""
    image = display.copy()  # the display copy is shared (chat.photos cache)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return "data:image/jpeg;base64," + base64.b64encode(
        to_jpeg_bytes(image, quality=85)
    ).decode("ascii")


def region_hint(name: str, prompt: str | None) -> str:
    """The message above the photo. ``name`` is the upload's own name and
    ``prompt`` came from the user's words: both shown inert (no link, image
    or emphasis from a name like ``![b](https://evil.example/b.png).png``)."""
    where = f"*{escape_markdown(name)}*"
    if prompt:
        return f"Drag a rectangle on {where}: {inline_code(prompt)} runs there."
    return f"Drag a rectangle on {where}, then say what to look for."


async def pick_region(services: ChatServices, conversation: Conversation) -> None:
    """Show the active photo to drag a rectangle on (raises AppError: no photo)."""
    record = conversation.resolve(None)
    last = conversation.last_intent()
    photo = await asyncio.to_thread(stored_photo, services, record)  # decoded once
    src = await asyncio.to_thread(preview_data_url, photo.display)
    width, height = record.size_wh
    prompt = last.prompt if last is not None else None
    element = cl.CustomElement(
        name="RegionSelect",
        props={"src": src, "width": width, "height": height, "prompt": prompt},
        display="inline",
    )
    hint = region_hint(record.name, prompt)
    await cl.Message(content=hint, elements=[element]).send()
