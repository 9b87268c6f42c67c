"""After a crash: durable state writes, and the thread folder checked against it.

The chat saves its state *before* each answer is shown and right after a
photo is accepted (write-ahead), so a killed process leaves at most the work
in flight. What it can still leave behind is handled here on resume:

- a photo whose display copy (``NNN.jpg``) was not written yet: its original
  (``NNN.orig``, written before the photo is accepted) is enough, the copies
  are made again on first use (chat.photos);
- an original the state does not know (killed between the upload and the
  save): restored into the conversation when it decodes, named after the
  upload in the history with the same bytes; otherwise named as lost.

File names follow chat.photos: ``NNN.orig`` beside ``NNN.jpg``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.conversation import Conversation
from core.errors import AppError
from core.images import decode_image

logger = logging.getLogger(__name__)

ORIGINAL_SUFFIX = ".orig"  # chat.photos.original_path
LOST_SUFFIX = ".lost"  # an original that could not be restored, kept aside
DISPLAY_SUFFIX = ".jpg"  # chat.photos: the display copy of a new upload
PROBE_SIDE = 64  # px: restoring an original only needs its size
MAX_PIXELS = 2**62  # the original passed the upload checks before it was kept


def write_durably(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` atomically and durably.

    A unique draft in the same folder is written, fsynced and renamed over
    ``target`` (``os.replace``), then the folder is fsynced: a reader sees the
    old file or the new one, never a mix, even when two writers race.
    """
    handle, draft = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".part"
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(draft, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(draft)
        raise
    with contextlib.suppress(OSError):  # not every file system opens folders
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def read_state_file(target: Path, problems: list[str]) -> dict[str, Any]:
    """The JSON object in ``target``; {} when there is none (a fresh chat) or
    it cannot be read (named in ``problems``)."""
    if not target.exists():
        return {"conversation": Conversation().to_dict()}
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        data = None
        logger.warning("unreadable %s: %s", target, exc)
    if not isinstance(data, dict):
        problems.append(
            f"the saved state is not a JSON object (got {type(data).__name__})"
        )
        return {}
    return data


def original_of(display_path: str | Path) -> Path:
    path = Path(display_path)
    return path.with_name(path.stem + ORIGINAL_SUFFIX)


def photo_on_disk(display_path: str) -> bool:
    """The photo can be shown: its display copy, or the original to remake it."""
    return Path(display_path).is_file() or original_of(display_path).is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unknown_originals(folder: Path, conversation: Conversation) -> list[Path]:
    """Originals in ``folder`` that no photo of ``conversation`` stands for."""
    known = {original_of(record.path).name for record in conversation.images}
    found = folder.glob(f"*{ORIGINAL_SUFFIX}") if folder.is_dir() else ()
    return sorted(p for p in found if p.stem.isdigit() and p.name not in known)


def recover_photos(
    folder: Path,
    conversation: Conversation,
    upload_names: Callable[[], Mapping[str, str]],
) -> list[str]:
    """Bring originals the state does not know back into ``conversation``.

    ``upload_names()`` maps the sha256 of each upload kept in the history to
    its file name (called only when there is an unknown original). An
    original that decodes is added (named after its upload, else
    ``photo NNN``); one that does not (cut short by the crash) is named in
    the returned problems with the time it arrived, and renamed ``NNN.lost``
    so that the next resume does not name it again.
    """
    problems: list[str] = []
    originals = unknown_originals(folder, conversation)
    names = upload_names() if originals else {}
    for original in originals:
        name = names.get(sha256_of(original))
        try:
            _, size_wh = decode_image(
                original.read_bytes(), max_pixels=MAX_PIXELS, reduce_to_side=PROBE_SIDE
            )
        except (AppError, OSError, ValueError) as exc:
            arrived = time.strftime("%H:%M UTC", time.gmtime(original.stat().st_mtime))
            what = f"the photo {name}" if name else f"a photo ({original.name})"
            problems.append(f"{what} from {arrived} was lost; send it again")
            logger.warning("unreadable original %s dropped: %s", original, exc)
            original.replace(original.with_suffix(LOST_SUFFIX))
            continue
        display = original.with_name(original.stem + DISPLAY_SUFFIX)
        record = conversation.add_image(
            name or f"photo {int(original.stem)}", str(display), size_wh
        )
        logger.info("restored %s as %s (%s)", original, record.id, record.name)
    return problems
