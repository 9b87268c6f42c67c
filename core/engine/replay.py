"""A model that answers from a recording: demos and end-to-end tests.

``MODEL_ID=replay:/path/recording.json`` where the JSON maps the exact model
prompt to the raw text PaliGemma answered, e.g.
``{"segment cat": "<loc0100><loc0100><loc0800><loc0600> <seg...> cat"}``.
Masks still go through the real VAE decoder (VAE_PATH), so everything after
``generate`` is the production path.

Tests that need a model that takes time use the long form
``{"answers": {prompt: answer}, "token_delay_s": 0.02, "gate": "/tmp/fifo",
"call_log": "/tmp/calls.jsonl"}``: answers come out piece by piece (a loc/seg
token or a word); before each piece the model waits ``token_delay_s`` and/or
reads one byte from the ``gate`` FIFO (the test releases pieces by writing
bytes); a set ``cancel`` stops it before the next piece. ``call_log`` gets a
JSON line per call when it starts and when it ends (done / cancelled).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from core.config import Settings
from core.engine.base import Engine, GenerationParams
from core.errors import ModelUnavailableError
from core.types import GeneratedText

logger = logging.getLogger(__name__)

REPLAY_PREFIX = "replay:"
PIECE = re.compile(r"\s*(?:<(?:loc|seg)\d+>|[^\s<]+|<)")  # one token or word
OPTIONS = {"answers", "token_delay_s", "gate", "call_log"}


class ReplayModel(Engine):
    """An engine whose ``generate`` looks the prompt up in a recording."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._run_lock = threading.Lock()
        self._recording: dict[str, str] = {}
        self._delay_s = 0.0
        self._gate: int | None = None  # fd of the FIFO, opened on load
        self._call_log: Path | None = None

    def _load_model(self) -> None:
        path = Path(str(self.settings.model_id).removeprefix(REPLAY_PREFIX))
        try:
            recording = json.loads(path.expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The replay recording {path} could not be read ({exc}): point "
                "MODEL_ID=replay:<file> at a JSON object of prompt -> answer."
            ) from exc
        if isinstance(recording, dict) and "answers" in recording:
            self._options(recording, path)
            recording = recording["answers"]
        if not isinstance(recording, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in recording.items()
        ):
            raise ModelUnavailableError(
                f"The replay recording {path} must be a JSON object mapping each "
                "prompt (string) to the model's answer (string)."
            )
        self._recording = recording
        self._set(device="cpu", dtype="replay", model_id=f"{REPLAY_PREFIX}{path}")
        logger.info("replaying %d recorded answers from %s", len(recording), path)

    def _options(self, recording: dict, path: Path) -> None:
        unknown = set(recording) - OPTIONS
        try:
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            self._delay_s = float(recording.get("token_delay_s", 0.0))
            if recording.get("gate"):
                # O_RDWR: opening never blocks and reads never see end-of-file
                self._gate = os.open(recording["gate"], os.O_RDWR)
            if recording.get("call_log"):
                self._call_log = Path(recording["call_log"])
        except (OSError, TypeError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The replay recording {path} has bad options ({exc}): expected "
                f"{sorted(OPTIONS)}, a number of seconds and paths."
            ) from exc

    def _generate(
        self,
        image: Image.Image,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event | None = None,
    ) -> GeneratedText:
        with self._run_lock:
            answer = self._recording.get(prompt)
        if answer is None:
            raise ModelUnavailableError(
                f"The replay recording has no answer for the prompt {prompt!r}."
            )
        self._log(prompt, "start")
        cancel = cancel or threading.Event()
        pieces = PIECE.findall(answer)
        sent = 0
        for piece in pieces:
            if self._gate is not None:
                os.read(self._gate, 1)  # the test releases one piece
            if self._delay_s and cancel.wait(self._delay_s):
                break
            if cancel.is_set():
                break
            sent += 1
            if on_text is not None:
                on_text(piece)
        text = "".join(pieces[:sent]).strip()
        self._log(prompt, "cancelled" if sent < len(pieces) else "done", sent)
        logger.info("replayed %r for %dx%d image", prompt, *image.size)
        return GeneratedText(text, truncated=False, num_tokens=sent)

    def _log(self, prompt: str, event: str, pieces: int = 0) -> None:
        if self._call_log is not None:
            line = json.dumps({"prompt": prompt, "event": event, "pieces": pieces})
            with self._run_lock, self._call_log.open("a", encoding="utf-8") as log:
                log.write(line + "\n")
