"""A model that answers from a recording: demos and end-to-end tests.

``MODEL_ID=replay:/path/recording.json`` where the JSON maps the exact model
prompt to the raw text PaliGemma answered, e.g.
``{"segment cat": "<loc0100><loc0100><loc0800><loc0600> <seg...> cat"}``.
Masks still go through the real VAE decoder (VAE_PATH), so everything after
``generate`` is the production path.
"""

from __future__ import annotations

import json
import logging
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


class ReplayModel(Engine):
    """An engine whose ``generate`` looks the prompt up in a recording."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._run_lock = threading.Lock()
        self._recording: dict[str, str] = {}

    def _load_model(self) -> None:
        path = Path(str(self.settings.model_id).removeprefix(REPLAY_PREFIX))
        try:
            recording = json.loads(path.expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelUnavailableError(
                f"The replay recording {path} could not be read ({exc}): point "
                "MODEL_ID=replay:<file> at a JSON object of prompt -> answer."
            ) from exc
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

    def _generate(
        self,
        image: Image.Image,
        prompt: str,
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
    ) -> GeneratedText:
        with self._run_lock:
            answer = self._recording.get(prompt)
        if answer is None:
            raise ModelUnavailableError(
                f"The replay recording has no answer for the prompt {prompt!r}."
            )
        logger.info("replayed %r for %dx%d image", prompt, *image.size)
        if on_text is not None:
            on_text(answer)
        return GeneratedText(answer, truncated=False, num_tokens=0)
