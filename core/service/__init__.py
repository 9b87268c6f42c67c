"""The application service: what every door calls to analyse (see services.py).

Only this package imports the pipeline and tiling (tests/test_layout.py).
"""

from __future__ import annotations

from core.service.identity import client_id, queue_turn
from core.service.options import (
    Hooks,
    Job,
    Picture,
    RunOptions,
    runs_model,
    to_request,
)
from core.service.services import LOADING_RETRY_S, Looks, Services
from core.tiling import AUTO_TILE_PX, TileSpec, parse_tiles

__all__ = [
    "AUTO_TILE_PX",
    "LOADING_RETRY_S",
    "Hooks",
    "Job",
    "Looks",
    "Picture",
    "RunOptions",
    "Services",
    "TileSpec",
    "client_id",
    "parse_tiles",
    "queue_turn",
    "runs_model",
    "to_request",
]
