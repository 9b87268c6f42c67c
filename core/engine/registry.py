"""Several checkpoints served side by side (``MODELS``); the first is the default.

``EngineRegistry`` holds one engine per id, loads them one after another in a
single background thread (never two loads competing for memory), and
refuses, with the numbers and the fix, the checkpoints that do not fit in the
memory left. The chat's model dropdown and the API's ``model_id`` choose among
them with ``get``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from core.engine.base import Engine
from core.engine.hub import is_local_path
from core.errors import ModelNotAllowedError, ModelNotLoadedError
from core.security.redact import shown_model_id

logger = logging.getLogger(__name__)

GB = 1024**3
MEMORY_HEADROOM = 0.9  # keep 10 % of the free memory for activations and the app
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}
QUANTIZED_BYTES = {"int8": 1.0, "int4": 0.5}
_PARAMS_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)b\b", re.IGNORECASE)  # "-3b-" -> 3e9
WEIGHT_GLOBS = ("*.safetensors", "*.bin")


class EngineRegistry:
    """The engines of ``MODELS``, in order; ``default`` is the first.

    ``engines`` maps the id as configured to its (unloaded) engine.
    ``available_bytes`` tells the memory free for weights (tests pass a fixed
    number); by default the free GPU memory on CUDA, else the available RAM.
    """

    def __init__(
        self,
        settings: Settings,
        engines: dict[str, Engine],
        available_bytes: Callable[[str], int] | None = None,
    ) -> None:
        if not engines:
            raise ValueError("EngineRegistry needs at least one engine, got none")
        self.settings = settings
        self._engines = dict(engines)
        self._available_bytes = available_bytes or available_memory_bytes
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._engines)

    @property
    def default(self) -> Engine:
        return next(iter(self._engines.values()))

    def engines(self) -> list[tuple[str, Engine]]:
        return list(self._engines.items())

    def choices(self) -> dict[str, str]:
        """Dropdown items, label -> value: the checkpoint's folder or repo name
        ("paligemma2-3b-mix-448"), the shown id where two names clash; the
        value is the shown id (``names``), never a local path."""
        names = self.names()
        labels = [_short_name(model_id) for model_id in names.values()]
        return {
            label if labels.count(label) == 1 else name: name
            for label, name in zip(labels, names, strict=True)
        }

    def names(self) -> dict[str, str]:
        """Shown id -> id as configured, in MODELS order: what clients see
        and may name (core.security.shown_model_id: a local checkpoint by its
        folder name); a clashing name gets "-2", "-3", ..."""
        names: dict[str, str] = {}
        for model_id in self._engines:
            name = base = shown_model_id(model_id) or model_id
            number = 1
            while name in names:
                number += 1
                name = f"{base}-{number}"
            names[name] = model_id
        return names

    def get(self, model_id: str | None) -> Engine:
        """The engine serving ``model_id`` (None or "": the default).

        Matches the id as listed in MODELS, as the engine reports it once
        loaded, or as shown to clients (``names``). Raises
        ModelNotAllowedError (403) for an id this server does not know,
        ModelNotLoadedError (409) for one in MODEL_ALLOWLIST that is not
        served. Nothing is ever downloaded because a client named it.
        """
        if not model_id:
            return self.default
        model_id = self.names().get(model_id, model_id)
        for configured, engine in self._engines.items():
            if model_id in (configured, engine.status.model_id):
                return engine
        served = ", ".join(repr(i) for i in self.names())
        if model_id in self.settings.model_allowlist:
            raise ModelNotLoadedError(
                f"model_id {model_id!r} is allowed but not loaded; this server "
                f"runs {served}. Leave model_id out to use the first, or add it "
                "to MODELS."
            )
        raise ModelNotAllowedError(
            f"model_id {model_id!r} is not served here; choose one of {served} "
            "(MODELS lists them; MODEL_ALLOWLIST names ids a client may ask for)."
        )

    # -- loading ----------------------------------------------------------------
    def start_background_load(self) -> threading.Thread:
        """Load every engine, default first, in one daemon thread (once).

        One engine alone starts its own background load, as it always did.
        """
        if len(self._engines) == 1:
            return self.default.start_background_load()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self.load_all, name="model-load", daemon=True
                )
                self._thread.start()
            return self._thread

    def load_all(self) -> None:
        """Check the memory, then load each engine that fits, in order.

        A checkpoint that does not fit is marked unavailable with the numbers
        and the fix (its status says why); the others still load. Failures
        are recorded in each engine's status, never raised.
        """
        refused = self.check_memory()
        for model_id, engine in self._engines.items():
            if model_id in refused:
                engine.mark_unavailable(refused[model_id])
            elif engine.backend == "local":
                engine.start_background_load().join()  # one load at a time
            else:  # a remote engine retries on its own; it holds no memory here
                engine.start_background_load()

    def check_memory(self) -> dict[str, str]:
        """Ids of the checkpoints that do not fit -> the message saying so.

        Only with two or more checkpoints: one alone loads (or fails) as
        before. The default always gets its chance; the others in MODELS
        order while the estimated weights fit in ``MEMORY_HEADROOM`` of the
        available memory.
        """
        if len(self._engines) < 2:
            return {}
        device = _resolved_device(self.settings)
        estimates = {
            model_id: estimate_weight_bytes(model_id, self.settings, device)
            for model_id in self._engines
        }
        if not any(estimates.values()):
            return {}  # replays and remote engines hold no weights here
        budget = self._available_bytes(device) * MEMORY_HEADROOM
        refused: dict[str, str] = {}
        used = 0.0
        for number, (model_id, size) in enumerate(estimates.items()):
            if number == 0 or used + size <= budget:
                used += size
                continue
            refused[model_id] = (
                f"Not loaded: {model_id} needs about {size / GB:.1f} GB but only "
                f"{max(budget - used, 0) / GB:.1f} GB of {device} memory is left "
                f"after the {number} checkpoint(s) before it in MODELS. List "
                "fewer or smaller checkpoints in MODELS (the first is the "
                "default), or set QUANTIZATION=int8."
            )
            logger.error("%s", refused[model_id])
        return refused

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()


def available_memory_bytes(device: str) -> int:
    """Free GPU memory on ``cuda``, else the RAM the OS can hand out now."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def estimate_weight_bytes(model_id: str, settings: Settings, device: str) -> float:
    """Bytes the weights of ``model_id`` take once loaded; 0 when none here.

    A local checkpoint: its weight files, rescaled from the stored dtype to
    the one loaded. A hub id: the parameter count in its name ("3b") times
    the bytes per parameter. Replays and remote engines: 0.
    """
    if model_id.startswith("replay:") or settings.backend != "local":
        return 0.0
    target = _bytes_per_param(settings, device)
    if is_local_path(model_id):
        folder = Path(model_id).expanduser()
        files = [p for glob in WEIGHT_GLOBS for p in folder.glob(glob)]
        stored = DTYPE_BYTES.get(_stored_dtype(folder), 4.0)
        return sum(p.stat().st_size for p in files) * target / stored
    match = _PARAMS_IN_NAME.search(model_id.rsplit("/", 1)[-1])
    if match is None:
        logger.warning("cannot estimate the size of %s; assuming it fits", model_id)
        return 0.0
    return float(match.group(1)) * 1e9 * target


def _bytes_per_param(settings: Settings, device: str) -> float:
    if settings.quantization in QUANTIZED_BYTES:
        return QUANTIZED_BYTES[settings.quantization]
    dtype = settings.dtype
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    return DTYPE_BYTES[dtype]


def _stored_dtype(folder: Path) -> str:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    text_config = config.get("text_config") or {}
    for source in (config, text_config):
        for key in ("dtype", "torch_dtype"):
            if isinstance(source.get(key), str):
                return source[key]
    return "float32"


def _resolved_device(settings: Settings) -> str:
    if settings.device != "auto":
        return settings.device
    if settings.backend != "local" or all(
        (model_id or "").startswith("replay:") for model_id in settings.model_ids
    ):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _short_name(model_id: str) -> str:
    return model_id.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or model_id
