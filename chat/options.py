"""The chat settings panel's values as one frozen value, clamped to the widgets.

``current_options()`` / ``set_options()`` are the only readers and writers of
the session's options: every chat module asks them, so there is one fallback
(DEFAULT_OPTIONS) for a session that has none yet.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import chainlit as cl

from core.types import DECODING_PRESETS

logger = logging.getLogger(__name__)

MAX_NEW_TOKENS_RANGE = (0, 1024)  # the slider; 0 = sized from the request
MAX_NEW_TOKENS_STEP = 8
OPACITY_RANGE = (0.0, 1.0)
MAX_MODEL_ID_CHARS = 500  # a checkpoint id or path; longer is not one of MODELS
OPTIONS_KEY = "options"  # where the session keeps them (cl.user_session)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _number(value: Any, default: float) -> float:
    """``value`` as a finite float, else ``default`` (clients send anything)."""
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


@dataclass(frozen=True)
class ChatOptions:
    """What the settings panel sets: decoding, token cap and overlay drawing."""

    decoding: str = "greedy"
    max_new_tokens: int = 0  # 0: sized from the request (core.pipeline)
    opacity: float = 0.5
    show_labels: bool = True
    show_boxes: bool = True
    model: str = ""  # an id of MODELS (the dropdown); "": the first, the default
    look_closely: bool = False  # detect/segment on tiles too (chat.closely)

    def __post_init__(self) -> None:
        if self.decoding not in DECODING_PRESETS:
            raise ValueError(
                f"decoding must be one of {sorted(DECODING_PRESETS)}, "
                f"got {self.decoding!r}"
            )
        low, high = MAX_NEW_TOKENS_RANGE
        if not low <= self.max_new_tokens <= high:
            raise ValueError(
                f"max_new_tokens must be in {low}..{high}, got {self.max_new_tokens}"
            )
        if not OPACITY_RANGE[0] <= self.opacity <= OPACITY_RANGE[1]:
            raise ValueError(f"opacity must be in 0..1, got {self.opacity}")

    @classmethod
    def from_values(
        cls, values: Mapping[str, Any] | None, base: ChatOptions | None = None
    ) -> ChatOptions:
        """Options from the settings panel or a saved state, clamped to the widgets.

        Unknown keys are ignored; a value of the wrong type or out of range
        keeps ``base``'s value or is clamped, so a hostile client cannot push
        e.g. ``max_new_tokens=10**9`` past the slider.
        """
        base = base or cls()
        values = values if isinstance(values, Mapping) else {}
        decoding = values.get("decoding", base.decoding)
        if decoding not in DECODING_PRESETS:
            logger.warning("ignored unknown decoding %r", decoding)
            decoding = base.decoding
        tokens = _number(values.get("max_new_tokens"), base.max_new_tokens)
        tokens = int(_clamp(tokens, *MAX_NEW_TOKENS_RANGE))
        opacity = _clamp(_number(values.get("opacity"), base.opacity), *OPACITY_RANGE)
        return cls(
            decoding=decoding,
            max_new_tokens=tokens,
            opacity=opacity,
            show_labels=_flag(values.get("show_labels"), base.show_labels),
            show_boxes=_flag(values.get("show_boxes"), base.show_boxes),
            model=_model_id(values.get("model"), base.model),
            look_closely=_flag(values.get("look_closely"), base.look_closely),
        )

    def to_dict(self) -> dict[str, Any]:
        """For the saved state (state.json) and the settings panel."""
        return asdict(self)


def _model_id(value: Any, default: str) -> str:
    """A model id string as sent (checked against MODELS where it is used)."""
    if isinstance(value, str) and len(value) <= MAX_MODEL_ID_CHARS:
        return value.strip()
    return default


def _flag(value: Any, default: bool) -> bool:
    return value if isinstance(value, bool) else default


DEFAULT_OPTIONS = ChatOptions()


def current_options() -> ChatOptions:
    """This chat session's options; DEFAULT_OPTIONS until it has set some."""
    options = cl.user_session.get(OPTIONS_KEY)
    return options if isinstance(options, ChatOptions) else DEFAULT_OPTIONS


def set_options(options: ChatOptions) -> None:
    """Keep ``options`` as this chat session's options."""
    cl.user_session.set(OPTIONS_KEY, options)
