"""What one request asks and what it costs: RunOptions, the Job it becomes,
and the one rule for "does this request run the model?"."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from core.engine.queue import API, Place
from core.pipeline import MAX_DETECTIONS, region_on_photo, to_intent, token_budget
from core.ratelimit import work_cost
from core.tiling import TileSpec, tile_grid, tile_looks
from core.types import GROUNDED_TASKS, Decoding, Intent


def runs_model(intent: Intent) -> bool:
    """Whether ``intent`` asks the model to run (every other action is answered
    by the door itself: a question back, help, undo, select, export...)."""
    return intent.runs_model


def to_request(request: str | Intent, previous: Intent | None = None) -> Intent:
    """The Intent to run for chat text or an Intent; UserInputError (with the
    intent's own message when it has one) when it does not run the model."""
    return to_intent(request, previous)


@dataclass(frozen=True)
class RunOptions:
    """How a request runs: decoding, tiles, model and the server's limits.

    ``max_new_tokens`` is MAX_NEW_TOKENS (None: sized per request);
    ``decoding.max_new_tokens`` is the client's own cap and wins over it.
    ``tiles``: "off", "auto" or (columns, rows) (core.tiling.parse_tiles).
    """

    decoding: Decoding = field(default_factory=Decoding)
    tiles: TileSpec = "off"
    model: str | None = None
    max_new_tokens: int | None = None
    max_detections: int = MAX_DETECTIONS

    def budget(self, intent: Intent) -> int:
        """The token budget ``intent`` runs with: the one rule for every door."""
        return (
            self.decoding.max_new_tokens or self.max_new_tokens or token_budget(intent)
        )

    def grid(self, intent: Intent, size_wh: tuple[int, int]) -> tuple[int, int]:
        """Tile (columns, rows) on a ``size_wh`` photo (of its region when the
        request names one); (1, 1): no tiles. Only detect/segment are tiled."""
        if self.tiles == "off" or intent.task not in GROUNDED_TASKS:
            return 1, 1
        if intent.region is not None:
            x1, y1, x2, y2 = region_on_photo(intent.region, size_wh)
            size_wh = (x2 - x1, y2 - y1)
        return tile_grid(self.tiles, size_wh)

    def looks(self, intent: Intent, size_wh: tuple[int, int] | None = None) -> int:
        """Model runs on one photo: 1, or its tiles plus the whole photo. With
        no size, "auto" counts 1 (its grid is known once the photo is)."""
        if size_wh is not None:
            return tile_looks(self.grid(intent, size_wh), intent)
        return tile_looks(self.tiles, intent) if isinstance(self.tiles, tuple) else 1

    def cost(
        self,
        intent: Intent,
        sizes: Sequence[tuple[int, int]] = (),
        images: int = 1,
    ) -> int:
        """Rate-limit hits of ``intent``: one per model run (per image, per tile
        and the whole photo) times one per TOKENS_PER_HIT of its budget; the
        one cost rule. ``sizes`` of the photos when known, else ``images``."""
        runs = sum(self.looks(intent, s) for s in sizes) if sizes else None
        runs = runs if runs is not None else images * self.looks(intent)
        return work_cost(runs, self.budget(intent))


@dataclass(frozen=True)
class Job:
    """A prepared request: charged, ready to run on its photo(s).

    ``client`` is who pays (``client_id``), ``turn`` whose turn it is in the
    queue (``queue_turn``); ``kind`` and ``cap`` are the queue's. ``sized``:
    the photos' sizes were known when it was charged (else "auto" tiles are
    charged once each photo is decoded).
    """

    intent: Intent
    options: RunOptions
    client: str
    turn: str
    kind: str = API
    cap: int | None = None
    sized: bool = False

    @property
    def budget(self) -> int:
        return self.options.budget(self.intent)


@dataclass(frozen=True)
class Picture:
    """A photo as a door holds it: ``image`` is what the model sees of the
    whole photo, ``sharp`` a sharper copy regions and tiles are cut from
    (default ``image``), ``size_wh`` the original's size (default
    ``image.size``); results are in the original's pixels."""

    image: Image.Image
    sharp: Image.Image | None = None
    size_wh: tuple[int, int] | None = None

    @property
    def original_wh(self) -> tuple[int, int]:
        return self.size_wh or self.image.size


@dataclass(frozen=True)
class Hooks:
    """What a door watches while a job runs: ``on_text(piece)`` and
    ``on_tile(n, looks)`` on the model thread, ``on_position(place)`` on the
    event loop while it waits in the queue."""

    on_text: Callable[[str], None] | None = None
    on_tile: Callable[[int, int], None] | None = None
    on_position: Callable[[Place], Awaitable[Any]] | None = None
    cancel: threading.Event | None = None
