"""Chat photos, paid once: decoded, EXIF-rotated and downscaled on arrival.

Each upload leaves three files side by side in its session (or thread) folder:

- ``NNN.jpg``: the display copy, longest side at most DISPLAY_SIDE px (a JPEG
  decoded at 1/2, 1/4 or 1/8 scale by libjpeg may come out a little smaller,
  e.g. 2016x1512 for a 4032x3024 photo); this is ``ImageRecord.path``.
  Overlays are drawn on it (and sent as JPEG): JPEG quality 95 writes in
  ~50 ms where a PNG of a 12 MP photo's copy took ~1 s.
- ``NNN.model.jpg``: what the model gets, longest side at most MODEL_SIDE px
  (PaliGemma resizes to 224 or 448 px anyway).
- ``NNN.orig``: the uploaded bytes, untouched (full resolution).

Chats saved before this layout keep a full-size ``NNN.png``: on first use it
is moved to ``NNN.orig`` and its copies are made (the display copy then stays
a PNG at that path).

Boxes and masks stay in pixels of the *original* image (``ImageRecord.size_wh``)
whatever size the model saw. A small process-wide LRU keeps recent photos
decoded, so a repeat turn reads no file. No Chainlit here: plain I/O.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from core import images

logger = logging.getLogger(__name__)

DISPLAY_SIDE = 2048  # longest side of the copy overlays are drawn on, px
MODEL_SIDE = 896  # longest side of the model input: 2x PaliGemma's largest 448
CACHE_PHOTOS = 8  # decoded photos kept in memory (~11 MB each at 12 MP)
JPEG_QUALITY = 95  # stored copies


@dataclass(frozen=True, eq=False)
class Photo:
    """One upload, decoded once: display copy and model input (both RGB).

    ``original_wh`` is the uploaded image's ``(width, height)`` after EXIF
    orientation: the pixels boxes and masks are measured in.
    """

    original_wh: tuple[int, int]
    display: Image.Image
    model_input: Image.Image


def fitted_size(size_wh: tuple[int, int], side: int) -> tuple[int, int]:
    """``size_wh`` scaled down so its longest side is at most ``side`` (>= 1 px)."""
    width, height = size_wh
    ratio = min(1.0, side / max(width, height))
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def prepare_photo(data: bytes, *, max_pixels: int, max_bytes: int | None) -> Photo:
    """Decode an upload once (a JPEG at a reduced DCT scale) into a Photo.

    Raises what ``core.images.decode_image`` raises (ImageError, ...).
    """
    decoded, original_wh = images.decode_image(
        data, max_pixels=max_pixels, max_bytes=max_bytes, reduce_to_side=DISPLAY_SIDE
    )
    display = decoded  # a JPEG comes already reduced by its decoder
    if max(decoded.size) > DISPLAY_SIDE:
        display = _resized(decoded, fitted_size(original_wh, DISPLAY_SIDE))
    del decoded
    model_input = _resized(display, fitted_size(original_wh, MODEL_SIDE))
    logger.info(
        "decoded an upload once: %dx%d -> display %dx%d, model input %dx%d",
        *original_wh,
        *display.size,
        *model_input.size,
    )
    return Photo(original_wh, display, model_input)


def _resized(image: Image.Image, size_wh: tuple[int, int]) -> Image.Image:
    if image.size == size_wh:
        return image
    # reducing_gap 1: a box reduce by the whole factor, then Lanczos; twice as
    # fast as plain Lanczos for a 12 MP photo's copies, and as sharp at 896 px.
    return image.resize(size_wh, Image.Resampling.LANCZOS, reducing_gap=1.0)


def model_path(display_path: Path) -> Path:
    return display_path.with_name(display_path.stem + ".model.jpg")


def original_path(display_path: Path) -> Path:
    return display_path.with_name(display_path.stem + ".orig")


class PhotoStore:
    """Writes an upload's files once and hands back decoded photos (LRU).

    The copies are written by one background thread: the first answer need
    not wait for two JPEG encodes. ``get`` waits for a photo's pending write
    before it reads files.
    """

    def __init__(self, cache_size: int = CACHE_PHOTOS) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._cache: OrderedDict[str, Photo] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="photo-writer")
        self._pending: dict[str, Future] = {}

    def ingest(
        self,
        data: bytes,
        display_path: Path,
        *,
        max_pixels: int,
        max_bytes: int | None,
    ) -> Photo:
        """Decode ``data`` once and keep its three files (see module doc).

        The original is written before this returns (it also reserves the
        name ``NNN``); the two copies follow on the writer thread.
        """
        photo = prepare_photo(data, max_pixels=max_pixels, max_bytes=max_bytes)
        display_path.parent.mkdir(parents=True, exist_ok=True)
        original_path(display_path).write_bytes(data)
        key = str(display_path)
        self._remember(key, photo)
        with self._lock:
            self._pending[key] = self._writer.submit(_write_copies, photo, display_path)
        return photo

    def flush(self) -> None:
        """Wait until every copy is on disk (raises a write's OSError)."""
        with self._lock:
            pending = list(self._pending.items())
        for key, future in pending:
            self._finish(key, future)

    def _finish(self, key: str, future: Future) -> None:
        try:
            future.result()
        finally:
            with self._lock:
                if self._pending.get(key) is future:
                    del self._pending[key]

    def get(self, display_path: str, original_wh: tuple[int, int]) -> Photo:
        """The photo stored at ``display_path``: from memory, else its copies.

        A chat saved before copies existed keeps only a full-size ``NNN.png``:
        it is decoded once and given its copies (the original moved aside).
        """
        with self._lock:
            photo = self._cache.get(display_path)
            if photo is not None:
                self._cache.move_to_end(display_path)
                return photo
            pending = self._pending.get(display_path)
        if pending is not None:
            self._finish(display_path, pending)
        path = Path(display_path)
        if path.is_file() and model_path(path).is_file():  # else remade from .orig
            photo = Photo(tuple(original_wh), _read(path), _read(model_path(path)))
        else:
            photo = self._upgrade(path)
        self._remember(display_path, photo)
        return photo

    def forget(self, display_path: str) -> None:
        with self._lock:
            self._cache.pop(display_path, None)

    def _upgrade(self, path: Path) -> Photo:
        original = original_path(path)
        if not original.is_file():
            path.replace(original)
        data = original.read_bytes()
        photo = prepare_photo(data, max_pixels=2**62, max_bytes=None)  # ours already
        _save(photo.model_input, model_path(path))
        _save(photo.display, path)  # a PNG: the name older state files point at
        return photo

    def _remember(self, key: str, photo: Photo) -> None:
        if self._cache_size == 0:
            return
        with self._lock:
            self._cache[key] = photo
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _write_copies(photo: Photo, display_path: Path) -> None:
    try:
        _save(photo.model_input, model_path(display_path))
        _save(photo.display, display_path)  # last: its presence means "complete"
    except OSError:
        logger.exception("could not write the copies of %s", display_path)
        raise


def _save(image: Image.Image, path: Path) -> None:
    """Write ``image`` whole or not at all (a crash leaves no half file)."""
    draft = path.with_name(f".{path.name}.part")
    if path.suffix == ".png":
        image.save(draft, format="PNG", compress_level=1)
    else:
        image.save(draft, format="JPEG", quality=JPEG_QUALITY)
    draft.replace(path)


def _read(path: Path) -> Image.Image:
    """A copy this module wrote (RGB JPEG, or PNG for older chats), loaded."""
    with Image.open(path, formats=["JPEG", "PNG"]) as stored:
        return stored.convert("RGB")
