"""The application service: the one layer every door calls to analyse.

A door (chat, REST, the OpenAI door, the CLI) turns its protocol into
``prepare`` (the request, charged) -> ``ready`` (its engine, waited for or
refused) -> ``run`` (generation and tiles in the model queue, parsing and
mask placement beside it) and back; ``run_many`` (core.service.many) and
``replay`` (a kept turn again) complete it. Built once per process by the
composition root (chainlit_app.py) and handed to every door.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.config import Settings
from core.conversation import Turn
from core.engine.base import Engine
from core.engine.queue import API, ModelQueue
from core.engine.registry import EngineRegistry
from core.errors import ModelLoadingError, ModelUnavailableError, UserInputError
from core.pipeline import CancellableModel, Generation
from core.ratelimit import RateLimiter
from core.service.compose import composed, run_composed
from core.service.options import Hooks, Job, Picture, RunOptions, to_request
from core.service.replay import replay_turn
from core.tiling import TileSpec, generate_looks, place_looks
from core.types import AnalysisResult, Decoding, Intent

logger = logging.getLogger(__name__)

LOADING_RETRY_S = 10
POLL_S = 0.2  # how often a waiting request looks at a loading engine


@dataclass(frozen=True)
class Looks:
    """The model's answers for one job on one photo (whole + tiles)."""

    size_wh: tuple[int, int]
    generations: tuple[Generation, ...]


@dataclass
class Services:
    """The process's engines, its one fair queue and its one rate limiter."""

    settings: Settings
    engines: EngineRegistry
    queue: ModelQueue
    limiter: RateLimiter
    started: float = field(default_factory=time.time)

    @classmethod
    def build(
        cls, settings: Settings, engines: Any, queue: ModelQueue | None = None
    ) -> Services:
        """``engines``: an EngineRegistry, or one engine (served alone)."""
        if not isinstance(engines, EngineRegistry):
            key = settings.model_id or "auto"
            engines = EngineRegistry(settings, {key: engines})
        queue = queue or ModelQueue(
            max_pending=settings.queue_max,
            timeout_s=settings.request_timeout_s,
            workers=settings.model_workers,
            per_client=settings.queue_per_client,
        )
        return cls(settings, engines, queue, RateLimiter(settings.rate_limit_per_min))

    @classmethod
    def for_process(cls, settings: Settings) -> Services:
        """The services over this process's engines (core.engine.get_engines:
        every model of MODELS, loaded by whoever starts them)."""
        from core.engine import get_engines

        return cls.build(settings, get_engines(settings))

    def options(
        self,
        decoding: Decoding | None = None,
        tiles: TileSpec = "off",
        model: str | None = None,
    ) -> RunOptions:
        """RunOptions with this server's MAX_NEW_TOKENS and MAX_DETECTIONS."""
        return RunOptions(
            decoding or Decoding(),
            tiles,
            model,
            self.settings.max_new_tokens,
            self.settings.max_detections,
        )

    def engine_for(self, model_id: Any) -> Engine:
        """The engine ``model_id`` names (None/"": the default); 400 for a
        non-string, 403/409 for ids not served (EngineRegistry.get)."""
        if model_id is not None and not isinstance(model_id, str):
            raise UserInputError(
                f"model_id must be a string, got {type(model_id).__name__}."
            )
        return self.engines.get(model_id.strip() if model_id else None)

    def admit(self, client: str, cost: int = 1) -> None:
        """``cost`` hits of the one rate limiter (429 past it)."""
        self.limiter.hit(client, cost)

    def prepare(
        self,
        request: str | Intent,
        options: RunOptions,
        client: str,
        *,
        sizes: Sequence[tuple[int, int]] = (),
        images: int = 1,
        paid: int = 0,
        turn: str | None = None,
        kind: str = API,
        cap: int | None = None,
    ) -> Job:
        """The request as a Job, charged: ``options.cost`` less the ``paid``
        hits ``client`` already took (``admit``). UserInputError when it does
        not run the model, RateLimitedError past the limit (nothing counted)."""
        intent = to_request(request)
        cost = options.cost(intent, sizes, images)
        self.limiter.check_cost(cost)
        if cost > paid:
            self.limiter.hit(client, cost - paid)
        turn = turn or client
        return Job(intent, options, client, turn, kind, cap, sized=bool(sizes))

    async def ready(self, model: str | None, *, wait: bool) -> Engine:
        """The engine of ``model``, loaded. A failed load is a 503; a loading
        one (whose load starts here when nothing started it) is waited for up
        to REQUEST_TIMEOUT_S with ``wait``, else refused (503, Retry-After)."""
        engine = self.engine_for(model)
        state = engine.status.state
        if state == "ready":
            return engine
        if state == "failed":
            raise ModelUnavailableError(
                engine.status.error or "The model failed to load."
            )
        if state == "idle":
            logger.info("a request needs %s: starting the load", engine.status.model_id)
            self.engines.start_background_load()
        if not wait:
            raise ModelLoadingError(
                "The model is still loading; try again shortly.",
                retry_after_s=LOADING_RETRY_S,
            )
        return await self._loaded(engine)

    async def _loaded(self, engine: Engine) -> Engine:
        started, timeout_s = time.perf_counter(), self.settings.request_timeout_s
        while engine.status.state in ("idle", "loading"):
            if time.perf_counter() - started > timeout_s:
                raise ModelLoadingError(
                    f"The model is still loading after {timeout_s:.0f} s "
                    "(REQUEST_TIMEOUT_S); send your request again in a moment.",
                    retry_after_s=LOADING_RETRY_S,
                )
            await asyncio.sleep(POLL_S)  # the load runs on its own thread
        if engine.status.state != "ready":
            raise ModelUnavailableError(
                engine.status.error or "The model failed to load."
            )
        return engine

    async def run(
        self,
        job: Job,
        picture: Picture,
        hooks: Hooks | None = None,
        engine: Engine | None = None,
    ) -> AnalysisResult:
        """``job`` on one photo: ``generate`` in the queue, then ``place``
        beside it. ``engine`` default: ``ready(..., wait=False)``. A composed
        job ("detect everything", a caption per object) runs its steps
        (core.service.compose)."""
        engine = engine or await self.ready(job.options.model, wait=False)
        if composed(job.intent):
            return await run_composed(self, job, picture, hooks or Hooks(), engine)
        looks = await self.generate(job, picture, hooks, engine)
        return await self.place(job, looks, engine)

    async def generate(
        self, job: Job, picture: Picture, hooks: Hooks | None, engine: Engine
    ) -> Looks:
        """The model's answers (whole photo and tiles) in ``job.turn``'s turn
        of the queue. An unsized "auto" job is charged its grid first."""
        hooks = hooks or Hooks()
        size_wh = picture.original_wh
        grid = job.options.grid(job.intent, size_wh)
        if not job.sized and job.options.tiles == "auto":
            self._charge_grid(job, size_wh)
        cancel = hooks.cancel or threading.Event()  # set when the caller stops
        generations = await self.queue.submit(
            generate_looks,
            picture.image,
            job.intent,
            CancellableModel(engine, cancel),
            grid,
            sharp=picture.sharp,
            source_wh=size_wh,
            decoding=job.options.decoding,
            max_new_tokens=job.budget,
            on_text=hooks.on_text,
            on_tile=hooks.on_tile,
            client=job.turn,
            kind=job.kind,
            cap=job.cap,
            cancel=cancel,
            on_position=hooks.on_position,
        )
        return Looks(size_wh, tuple(generations))

    def _charge_grid(self, job: Job, size_wh: tuple[int, int]) -> None:
        """An "auto" job's runs past the one ``prepare`` counted, now that the
        photo's size is known, before any of them runs (429 past the limit)."""
        looks = job.options.looks(job.intent, size_wh)
        if looks > 1:
            self.limiter.check_cost(job.options.cost(job.intent, [size_wh]))
            extra = job.options.cost(job.intent, images=1) * (looks - 1)
            self.limiter.hit(job.client, extra)

    async def place(self, job: Job, looks: Looks, engine: Engine) -> AnalysisResult:
        """Parse, decode masks and place them, on a plain thread: never on the
        model worker (the VAE is thread-safe), so the next generation need
        not wait for it."""
        return await asyncio.to_thread(
            place_looks,
            looks.size_wh,
            list(looks.generations),
            engine,
            max_detections=job.options.max_detections,
        )

    async def replay(
        self, turn: Turn, size_wh: tuple[int, int], engine: Engine
    ) -> AnalysisResult:
        """A kept turn again (undo, redraw, export) from its kept answer or
        objects: no generation, masks decoded beside the queue."""
        return await asyncio.to_thread(
            replay_turn,
            turn,
            size_wh,
            engine,
            max_pixels=self.settings.max_image_pixels,
            max_detections=self.settings.max_detections,
        )
