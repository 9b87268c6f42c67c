"""Per-session chat state: uploaded images, the active one, history, undo. Pure.

One ``Conversation`` lives in each chat session. It never touches the disk: it
tells the caller which paths to delete (``remove_image``, ``clear``, ``prune``).
Image references follow ``Intent.image_ref``: None (the active image), "1",
"2"... (1-based upload order), "last", "all", or a file name as typed.
``to_dict`` / ``from_dict`` give a JSON-safe snapshot so a persisted chat can
be rebuilt after a reload or a server restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.errors import UserInputError
from core.types import AnalysisResult, Intent, Region, ViewChange

logger = logging.getLogger(__name__)

STATE_VERSION = 1  # bump when the to_dict layout changes incompatibly


def intent_to_dict(intent: Intent) -> dict[str, Any]:
    """An Intent as JSON-safe values (``targets`` becomes a list)."""
    data = asdict(intent)
    data["targets"] = list(intent.targets)
    return data


def intent_from_dict(data: dict[str, Any]) -> Intent:
    """Inverse of ``intent_to_dict``; unknown keys are ignored, ``task`` and
    ``prompt`` are required."""
    if not isinstance(data, dict):
        raise ValueError(f"an intent must be an object, got {type(data).__name__}")
    known = {f.name for f in fields(Intent)}
    missing = {"task", "prompt"} - data.keys()
    if missing:
        raise ValueError(f"an intent needs {sorted(missing)}, got keys {sorted(data)}")
    for key in ("task", "prompt"):
        if not isinstance(data[key], str):
            raise ValueError(
                f"an intent's {key} must be a string, got {data[key]!r:.60}"
            )
    values = {k: v for k, v in data.items() if k in known}
    values["targets"] = tuple(values.get("targets") or ())
    region = values.get("region")
    if region is not None:
        try:
            values["region"] = Region(region["unit"], tuple(region["box"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"an intent's region is malformed: {region!r}") from exc
    if isinstance(view := values.get("view"), dict):
        values["view"] = ViewChange(
            keep=tuple(int(n) for n in view.get("keep") or ()),
            drop=tuple(int(n) for n in view.get("drop") or ()),
            show_all=bool(view.get("show_all")),
            layers=tuple((str(k), bool(on)) for k, on in view.get("layers") or ()),
        )
    return Intent(**values)


@dataclass(frozen=True)
class ImageRecord:
    """One uploaded image. ``order`` is its 1-based position in the chat."""

    id: str
    name: str
    path: str
    size_wh: tuple[int, int]
    order: int


@dataclass(frozen=True)
class ResultSummary:
    """What a turn showed, small enough to keep for the whole session.

    A "look closely" turn (``tiles`` > 0) merged several answers, so its
    objects are kept (core.kept) instead of rebuilt from ``raw_text``.
    A composed turn keeps its ``caption`` and ``captions`` (one per object).
    """

    raw_text: str
    labels: tuple[str | None, ...] = ()
    answer: str | None = None
    truncated: bool = False
    tiles: int = 0
    objects: tuple[dict[str, Any], ...] = ()
    caption: str | None = None
    captions: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result: AnalysisResult) -> ResultSummary:
        return cls(
            raw_text=str(result.raw_text),
            labels=tuple(d.label for d in result.detections),
            answer=result.answer,
            truncated=result.truncated,
            caption=result.caption,
            captions=result.object_captions,
        )


@dataclass(frozen=True)
class Turn:
    """One model run on one image; ``index`` counts turns in the session.

    ``hidden`` holds the 1-based numbers of objects the user hid ("remove 2",
    "only 1 and 3"): such a redraw is a new turn with the same intent and
    summary, so "undo" brings the objects back. ``request`` groups the turns
    one message made (several photos): "undo" takes them back together
    (0: a turn of its own).
    """

    index: int
    image_id: str
    intent: Intent
    summary: ResultSummary
    hidden: tuple[int, ...] = ()
    request: int = 0


class Conversation:
    """Images, the active image and the turns of one chat session."""

    def __init__(self) -> None:
        self._images: list[ImageRecord] = []
        self._active_id: str | None = None
        self._turns: list[Turn] = []
        self._next_image = 1
        self._next_turn = 1
        self._next_request = 1
        self._group: tuple[str, ...] = ()  # ids of photos sent in one message

    # Images -----------------------------------------------------------------

    @property
    def images(self) -> tuple[ImageRecord, ...]:
        """Images in upload order."""
        return tuple(self._images)

    @property
    def has_images(self) -> bool:
        return bool(self._images)

    @property
    def active_image(self) -> ImageRecord | None:
        """The image a request without a reference applies to, or None."""
        return self._by_id(self._active_id) if self._active_id else None

    def add_image(self, name: str, path: str, size_wh: tuple[int, int]) -> ImageRecord:
        """Register an upload; it becomes the active image.

        ``size_wh`` is (width, height) in pixels, both > 0.
        """
        width, height = size_wh
        if width <= 0 or height <= 0:
            raise ValueError(f"size_wh must be positive (width, height), got {size_wh}")
        record = ImageRecord(
            id=f"img-{self._next_image}",
            name=name.strip() or f"image-{self._next_image}",
            path=path,
            size_wh=(int(width), int(height)),
            order=len(self._images) + 1,
        )
        self._next_image += 1
        self._images.append(record)
        self._active_id = record.id
        self._group = ()
        logger.debug("added image %s (%s) as #%d", record.id, record.name, record.order)
        return record

    def resolve(self, image_ref: str | None) -> ImageRecord | list[ImageRecord]:
        """The image(s) a reference names; "all" gives a list in upload order.

        Raises UserInputError, with the list of images, when there is none.
        """
        if not self._images:
            raise UserInputError(
                "There are no images in this chat yet; drop a photo first."
            )
        ref = (image_ref or "").strip()
        if not ref:
            if len(self.group) > 1:
                return list(self.group)
            active = self.active_image
            return active if active is not None else self._images[-1]
        low = ref.lower()
        if low == "all":
            return list(self._images)
        if low == "last":
            return self._images[-1]
        if low.isdigit():
            number = int(low)
            if 1 <= number <= len(self._images):
                return self._images[number - 1]
            raise UserInputError(
                f"There is no image {number}; {self.describe_images()}"
            )
        matches = [r for r in self._images if r.name.lower() == low]
        if not matches:
            matches = [
                r for r in self._images if r.name.lower().rsplit(".", 1)[0] == low
            ]
        if matches:
            return matches[-1]  # the newest upload of that name
        raise UserInputError(
            f"There is no image named “{ref}”; {self.describe_images()}"
        )

    @property
    def group(self) -> tuple[ImageRecord, ...]:
        """Photos sent together in the last message: requests without an image
        reference run on each of them (until one is selected)."""
        return tuple(r for r in self._images if r.id in self._group)

    def set_group(self, records: list[ImageRecord]) -> None:
        """Make the photos of one message the images plain requests apply to."""
        ids = {r.id for r in records}
        unknown = ids - set(self._ids())
        if unknown:
            raise ValueError(
                f"unknown image ids {sorted(unknown)}; known: {self._ids()}"
            )
        self._group = tuple(r.id for r in self._images if r.id in ids)

    def select(self, image_ref: str | None) -> ImageRecord:
        """Make the referenced single image the active one and return it."""
        if not image_ref and len(self.group) > 1:
            raise UserInputError(
                "Pick one image to work on, e.g. “use image 1”; "
                f"{self.describe_images()}"
            )
        record = self.resolve(image_ref)
        if isinstance(record, list):
            raise UserInputError(
                "Pick one image to work on, e.g. “use image 1”; "
                f"{self.describe_images()}"
            )
        self._active_id = record.id
        self._group = ()
        return record

    def describe_images(self) -> str:
        """ "this chat has 2 images: 1. cat.jpg, 2. car.png (active)." """
        if not self._images:
            return "this chat has no images yet."
        names = ", ".join(
            f"{r.order}. {r.name}" + (" (active)" if r.id == self._active_id else "")
            for r in self._images
        )
        count = len(self._images)
        return f"this chat has {count} image{'s' if count != 1 else ''}: {names}."

    def remove_image(self, image_ref: str | None) -> ImageRecord:
        """Forget one image and its turns; the caller deletes ``record.path``."""
        record = self.resolve(image_ref)
        if isinstance(record, list):
            raise UserInputError("Remove one image at a time, e.g. “remove image 2”.")
        self._images = [r for r in self._images if r.id != record.id]
        self._group = tuple(i for i in self._group if i != record.id)
        self._renumber()
        self._turns = [t for t in self._turns if t.image_id != record.id]
        if self._active_id == record.id:
            self._active_id = self._images[-1].id if self._images else None
        return record

    def prune(self, max_images: int) -> list[ImageRecord]:
        """Drop the oldest images beyond ``max_images`` (never the active one)."""
        if max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {max_images}")
        removed: list[ImageRecord] = []
        while len(self._images) > max_images:
            victim = next(r for r in self._images if r.id != self._active_id)
            removed.append(self.remove_image(str(victim.order)))
        return removed

    def clear(self) -> list[str]:
        """Forget everything; returns the image paths the caller should delete."""
        paths = [r.path for r in self._images]
        self._images, self._turns, self._active_id = [], [], None
        self._group = ()
        return paths

    # Turns ------------------------------------------------------------------

    @property
    def history(self) -> tuple[Turn, ...]:
        """Turns still in effect, oldest first (undone turns are gone)."""
        return tuple(self._turns)

    def record(
        self,
        image_id: str,
        intent: Intent,
        summary: ResultSummary,
        hidden: tuple[int, ...] = (),
        request: int = 0,
    ) -> Turn:
        """Remember a model run on ``image_id``; only "run" intents belong here.

        ``hidden``: 1-based object numbers not shown (a redraw of a result).
        ``request``: from ``new_request``, shared by the turns of one message.
        """
        if self._by_id(image_id) is None:
            raise ValueError(f"unknown image id {image_id!r}; known: {self._ids()}")
        if not intent.runs_model:
            raise ValueError(
                f"only intents that ran are recorded, got {intent.action!r}"
            )
        turn = Turn(
            self._next_turn, image_id, intent, summary, tuple(hidden), int(request)
        )
        self._next_turn += 1
        self._turns.append(turn)
        return turn

    def last_turn(self, image_id: str | None = None) -> Turn | None:
        """The newest turn on ``image_id``, or in the whole chat when None."""
        for turn in reversed(self._turns):
            if image_id is None or turn.image_id == image_id:
                return turn
        return None

    def last_intent(self, image_id: str | None = None) -> Intent | None:
        """The intent refinements build on: ``parse_intent(text, previous=...)``."""
        turn = self.last_turn(image_id)
        return turn.intent if turn is not None else None

    def can_undo(self, image_id: str | None = None) -> bool:
        return self.last_turn(image_id) is not None

    def new_request(self) -> int:
        """A number for the turns one message records (``record(request=)``)."""
        number = self._next_request
        self._next_request += 1
        return number

    def undo_request(self) -> list[tuple[ImageRecord, Turn | None]]:
        """Take back every turn of the newest request (one per photo it ran on).

        Returns, per photo in the order the turns were made, the turn now
        current there (None: back to the plain upload). Raises
        UserInputError when there is nothing to undo.
        """
        latest = self.last_turn()
        if latest is None:
            raise UserInputError("There is nothing to undo yet.")
        together = [latest]
        if latest.request:
            together = [t for t in self._turns if t.request == latest.request]
        for turn in together:
            self._turns.remove(turn)
        if len(together) == 1:
            self._active_id = latest.image_id
        return [(self._by_id(t.image_id), self.last_turn(t.image_id)) for t in together]

    def undo(self, image_id: str | None = None) -> Turn | None:
        """Take back the newest turn on ``image_id`` (default: the newest turn).

        Returns the turn now current for that image, to show again, or None
        when the image is back to its plain upload. Raises UserInputError when
        there is nothing to undo.
        """
        latest = self.last_turn(image_id)
        if latest is None:
            raise UserInputError("There is nothing to undo yet.")
        self._turns.remove(latest)
        self._active_id = latest.image_id
        logger.debug("undid turn %d on %s", latest.index, latest.image_id)
        return self.last_turn(latest.image_id)

    # Snapshots ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild this conversation, as JSON-safe values."""
        return {
            "version": STATE_VERSION,
            "images": [asdict(r) for r in self._images],
            "active_id": self._active_id,
            "turns": [
                {
                    "index": t.index,
                    "image_id": t.image_id,
                    "intent": intent_to_dict(t.intent),
                    "summary": asdict(t.summary),
                    "hidden": list(t.hidden),
                    "request": t.request,
                }
                for t in self._turns
            ],
            "group": list(self._group),
            "next_image": self._next_image,
            "next_turn": self._next_turn,
            "next_request": self._next_request,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """Rebuild a conversation from ``to_dict`` output (also after a JSON trip).

        Raises ValueError saying what is wrong when ``data`` is not a snapshot
        of this version.
        """
        version = data.get("version") if isinstance(data, dict) else type(data)
        if version != STATE_VERSION:
            raise ValueError(
                f"expected a conversation snapshot version {STATE_VERSION}, "
                f"got {version!r}"
            )
        chat = cls()
        try:
            for r in data["images"]:
                size_wh = (int(r["size_wh"][0]), int(r["size_wh"][1]))
                record = ImageRecord(
                    str(r["id"]), str(r["name"]), str(r["path"]), size_wh, 0
                )
                chat._images.append(record)
            for t in data["turns"]:
                summary = dict(t["summary"])
                summary["labels"] = tuple(summary.get("labels") or ())
                summary["objects"] = tuple(summary.get("objects") or ())
                summary["captions"] = tuple(map(str, summary.get("captions") or ()))
                if summary.get("caption") is not None:
                    summary["caption"] = str(summary["caption"])
                chat._turns.append(
                    Turn(
                        int(t["index"]),
                        str(t["image_id"]),
                        intent_from_dict(t["intent"]),
                        ResultSummary(**summary),
                        tuple(int(n) for n in t.get("hidden") or ()),
                        int(t.get("request") or 0),
                    )
                )
            chat._next_image = int(data["next_image"])
            chat._next_turn = int(data["next_turn"])
            requests = [t.request for t in chat._turns]
            chat._next_request = max(
                int(data.get("next_request") or 1), max(requests, default=0) + 1
            )
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed conversation snapshot: {exc!r}") from exc
        unknown = {t.image_id for t in chat._turns} - set(chat._ids())
        if unknown:
            raise ValueError(f"turns refer to unknown images {sorted(unknown)}")
        active = data.get("active_id")
        chat._active_id = active if active in chat._ids() else None
        chat._group = tuple(i for i in data.get("group") or () if i in chat._ids())
        chat._renumber()
        return chat

    def drop_missing(self, exists: Callable[[str], bool]) -> list[ImageRecord]:
        """Forget images whose file is gone (and their turns); returns them."""
        gone = [r for r in self._images if not exists(r.path)]
        for record in gone:
            self.remove_image(str(self._by_id(record.id).order))
        return gone

    def _renumber(self) -> None:
        self._images = [
            ImageRecord(r.id, r.name, r.path, r.size_wh, order)
            for order, r in enumerate(self._images, start=1)
        ]

    def _by_id(self, image_id: str | None) -> ImageRecord | None:
        return next((r for r in self._images if r.id == image_id), None)

    def _ids(self) -> list[str]:
        return [r.id for r in self._images]
