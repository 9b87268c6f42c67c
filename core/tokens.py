"""PaliGemma output grammar -> ParsedObject. Pure.

Each object is four ``<locDDDD>`` tokens in the order y1, x1, y2, x2 (bins
0..1023 of 1/1024 of the image side), then optionally sixteen ``<segDDD>``
codebook indices (0..127), then an optional label. Objects are separated by
``" ; "``; whitespace between the pieces varies.
"""

from __future__ import annotations

import logging
import re

from core.types import ParsedObject

logger = logging.getLogger(__name__)

LOC_BINS = 1024  # <loc0000>..<loc1023>: box coordinate = bin / 1024
SEG_CODES = 128  # <seg000>..<seg127>: VQ-VAE codebook indices
SEG_PER_OBJECT = 16  # a 4x4 grid of codes per mask
MASK_SIDE = 64  # the VAE decodes each mask to 64x64 logits
IMAGE_TOKEN = "<image>"  # goes first in the text; the processor adds <bos> and "\n"

LOC_TOKEN = re.compile(r"<loc(\d{4})>")
SEG_TOKEN = re.compile(r"<seg(\d{3})>")
ANY_TOKEN = re.compile(r"<(?:loc\d{4}|seg\d{3})>")

_OBJECT = re.compile(
    r"((?:<loc\d{4}>\s*){4})"  # y1 x1 y2 x2
    r"((?:<seg\d{3}>\s*){16})?"  # optional mask codes
    r"((?:<seg\d{3}>\s*){1,15})?"  # a cut-off mask (answer truncated): ignored
    r"([^<;]*)"  # optional label, up to the separator or the next token
)


def parse_objects(text: str) -> list[ParsedObject]:
    """Parse every object in ``text``; never raises on model output.

    Malformed pieces (text between objects, empty boxes, a cut-off mask) are
    skipped or dropped and logged. Returns objects in the order given.
    """
    objects: list[ParsedObject] = []
    for match in _OBJECT.finditer(text):
        locs_text, segs_text, partial_segs, label_text = match.groups()
        y1, x1, y2, x2 = (int(v) / LOC_BINS for v in LOC_TOKEN.findall(locs_text))
        if y2 <= y1 or x2 <= x1:
            logger.info("skipping an empty box in model output: %r", match.group(0))
            continue
        seg_indices = None
        if segs_text:
            seg_indices = tuple(int(v) for v in SEG_TOKEN.findall(segs_text))
            if max(seg_indices) >= SEG_CODES:
                logger.warning("seg index out of range, dropping mask: %r", segs_text)
                seg_indices = None
        if partial_segs:
            logger.warning(
                "cut-off mask (%d of %d seg tokens): keeping the box only",
                len(SEG_TOKEN.findall(partial_segs)),
                SEG_PER_OBJECT,
            )
        label = " ".join(label_text.split()) or None
        objects.append(
            ParsedObject(label=label, box=(x1, y1, x2, y2), seg_indices=seg_indices)
        )
    return objects


def strip_tokens(text: str) -> str:
    """``text`` without loc/seg tokens, whitespace collapsed."""
    return " ".join(ANY_TOKEN.sub(" ", text).split())
