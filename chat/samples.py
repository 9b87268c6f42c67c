"""Try it without a photo: starters that bring a sample photo with them.

The photos ship inside scikit-image (``skimage.data``), free to use: Chelsea
the cat and the coffee cup are CC0, the astronaut (Eileen Collins) is a NASA
public-domain photo. Clicking a starter in a chat that has no photo yet
attaches the starter's photo to that message, credited in the reply.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import chainlit as cl
import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One starter: its button ``label``, the ``message`` it sends, and the
    ``skimage.data`` function whose photo comes with it."""

    label: str
    message: str
    photo: str
    credit: str


CHELSEA = "Chelsea the cat, by Stefan van der Walt (CC0)"
ASTRONAUT = "astronaut Eileen Collins, NASA (public domain)"
COFFEE = "coffee cup, by Rachel Michetti (CC0)"
MARK = " (sample photo)"  # only a starter sends it: typed requests never match
SAMPLES = (
    Sample("Segment the cat", "segment the cat" + MARK, "chelsea", CHELSEA),
    Sample(
        "Detect person and flag", "detect person ; flag" + MARK, "astronaut", ASTRONAUT
    ),
    Sample("Caption a photo", "caption this" + MARK, "coffee", COFFEE),
    Sample("Ask about a photo", "what is in the cup?" + MARK, "coffee", COFFEE),
)


def starters() -> list[cl.Starter]:
    return [cl.Starter(label=s.label, message=s.message) for s in SAMPLES]


def sample_for(text: str) -> Sample | None:
    """The sample whose starter sent ``text`` (exactly, ignoring case/space)."""
    wanted = " ".join(text.split()).casefold()
    return next((s for s in SAMPLES if s.message.casefold() == wanted), None)


def sample_rgb(sample: Sample) -> Image.Image:
    """The sample's photo as RGB (from scikit-image's bundled files)."""
    import skimage.data

    pixels = getattr(skimage.data, sample.photo)()
    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")


def write_sample(sample: Sample, folder: Path) -> Path:
    """The sample's photo as ``folder/<photo>.png`` (written once)."""
    path = folder / f"{sample.photo}.png"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        sample_rgb(sample).save(path, format="PNG")
    return path


async def attach_sample(message: cl.Message, has_images: bool) -> Sample | None:
    """Attach a starter's photo to ``message`` when the chat has none yet.

    Only a message that is exactly a starter's text (it ends with MARK, which
    is taken off), with no upload of its own, in a chat without photos; the
    photo then goes through the normal upload checks. Returns the sample
    attached, or None.
    """
    sample = sample_for(message.content or "")
    if sample is None:
        return None
    message.content = sample.message.removesuffix(MARK)  # the request itself
    if has_images or message.elements:
        return None
    folder = Path(cl.context.session.files_dir) / "samples"
    path = await asyncio.to_thread(write_sample, sample, folder)
    message.elements = [cl.Image(path=str(path), name=path.name)]
    await cl.Message(
        content=f"Using a sample photo: {sample.credit}, from scikit-image. "
        "Attach your own photo any time."
    ).send()
    logger.info("starter %r: attached the sample photo %s", sample.label, path.name)
    return sample
