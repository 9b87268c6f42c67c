"""The OpenAI chat-completions wire format, as vLLM speaks it. Pure, no network.

Builds the one-image request PaliGemma needs, reads plain and streamed
answers, and rebuilds ``<locDDDD>``/``<segDDD>`` tokens from the returned
token ids (vLLM's ``return_token_ids``) rather than trusting the text.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from core.engine.base import GenerationParams
from core.tokens import ANY_TOKEN, LOC_BINS, SEG_CODES

logger = logging.getLogger(__name__)

LOC_BASE_ID = 256000  # <loc0000> in the real PaliGemma tokenizer
SEG_BASE_ID = 257024  # <seg000>
UPLOAD_MAX_SIDE = 2048  # px; without a known input side, larger images shrink
_INPUT_SIDE = re.compile(r"-(224|448|896)(?![0-9])")  # paligemma2-3b-mix-448
PROBE_TEXT = "<loc0000><loc1023><seg000><seg127>"  # what /tokenize is asked
# Gemma's special tokens, dropped from the text as skip_special_tokens would.
_SPECIAL_TEXT = re.compile(r"<(?:eos|bos|pad|unk|mask|image|(?:start|end)_of_turn)>")


class WireError(ValueError):
    """The engine's answer does not have the expected shape."""


@dataclass(frozen=True)
class TokenIdMap:
    """Where the loc and seg tokens sit in the engine's vocabulary."""

    loc_base: int = LOC_BASE_ID
    seg_base: int = SEG_BASE_ID

    def token(self, token_id: int) -> str | None:
        """``<locDDDD>``/``<segDDD>`` for a loc/seg id; None for any other id."""
        if self.loc_base <= token_id < self.loc_base + LOC_BINS:
            return f"<loc{token_id - self.loc_base:04d}>"
        if self.seg_base <= token_id < self.seg_base + SEG_CODES:
            return f"<seg{token_id - self.seg_base:03d}>"
        return None

    @classmethod
    def from_probe(cls, ids: list[int]) -> TokenIdMap | None:
        """The map implied by the ids of PROBE_TEXT; None when they disagree."""
        if len(ids) != 4:
            return None
        loc0, loc1023, seg0, seg127 = ids
        if loc1023 - loc0 != LOC_BINS - 1 or seg127 - seg0 != SEG_CODES - 1:
            return None
        return cls(loc_base=loc0, seg_base=seg0)


def input_side_px(model_id: str) -> int | None:
    """The square input side a PaliGemma checkpoint name states (224, 448 or
    896, e.g. ``google/paligemma2-3b-mix-448``); None when it states none."""
    match = _INPUT_SIDE.search(model_id)
    return int(match.group(1)) if match else None


def image_to_data_url(
    image: Image.Image, side_px: int | None = None, max_side: int = UPLOAD_MAX_SIDE
) -> str:
    """RGB image -> ``data:image/png;base64,...`` as the model will see it.

    ``side_px`` (the model's input side): resized to side_px x side_px with
    bicubic resampling, as the SigLIP processor does, so the engine's own
    resize is a no-op and a 448 px upload is ~0.3 MB instead of up to 8 MB
    at 2048 px. Boxes are normalised, so the aspect change costs nothing.
    None: only sides over ``max_side`` shrink (aspect kept).
    """
    image = image if image.mode == "RGB" else image.convert("RGB")
    if side_px is not None:
        image = image.resize((side_px, side_px), Image.Resampling.BICUBIC)
    elif max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def chat_request(
    model: str,
    image_url: str,
    prompt: str,
    params: GenerationParams,
    *,
    stream: bool = False,
) -> dict[str, Any]:
    """The /v1/chat/completions body: one user turn, the image then the task.

    Greedy (temperature 0) unless ``do_sample``; special tokens kept in the
    text, no spaces inserted between them, token ids returned.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": prompt},
                ],
            }
        ],
        "max_tokens": params.max_new_tokens,
        "n": 1,
        "temperature": 0.0,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
        "return_token_ids": True,
        "stream": stream,
    }
    if params.do_sample:
        temperature = params.temperature
        body["temperature"] = 1.0 if temperature is None else temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.top_k:  # None or 0: no top-k cut, as in transformers
            body["top_k"] = params.top_k
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def rebuild_text(text: str, token_ids: list[int] | None, ids: TokenIdMap) -> str:
    """The answer with every loc/seg token taken from ``token_ids``.

    The text gives the layout (labels, separators); the ids give the token
    values. When the text lost or mangled tokens so that the counts differ,
    objects are rebuilt from the id runs, with labels taken from the text
    split at ``;`` when the counts line up (else objects without labels).
    Gemma special tokens (``<eos>``...) are dropped. Without ids, the text.
    """
    text = _SPECIAL_TEXT.sub("", text)
    if token_ids is None:
        return text.strip()
    runs: list[list[str]] = []  # consecutive loc/seg tokens, in id order
    previous_was_token = False
    for token_id in token_ids:
        token = ids.token(token_id)
        if token is not None:
            if not previous_was_token:
                runs.append([])
            runs[-1].append(token)
        previous_was_token = token is not None
    id_tokens = [token for run in runs for token in run]
    pieces = ANY_TOKEN.split(text)  # len(pieces) == tokens in text + 1
    if len(pieces) - 1 == len(id_tokens):
        rebuilt = pieces[0] + "".join(
            t + p for t, p in zip(id_tokens, pieces[1:], strict=True)
        )
        return rebuilt.strip()
    logger.warning(
        "engine text holds %d loc/seg tokens, its token ids %d: rebuilding from ids",
        len(pieces) - 1,
        len(id_tokens),
    )
    plain = "".join(pieces)
    labels = [p.strip().rstrip(";").strip() for p in re.split(r"(?<=;)", plain)]
    if not any(labels):
        labels = []
    if len(labels) != len(runs):
        labels = [""] * len(runs)
    objects = [
        "".join(run) + (f" {label}" if label else "")
        for run, label in zip(runs, labels, strict=True)
    ]
    return " ; ".join(objects)


def error_detail(body: bytes, limit: int = 300) -> str:
    """The engine's error message from an error body (OpenAI or vLLM shape)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:limit] or "empty body"
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:limit]
        if isinstance(error, str):
            return error[:limit]
    return json.dumps(payload)[:limit]


def served_models(payload: Any) -> list[str]:
    """Model ids of a /v1/models answer; raises WireError on another shape."""
    try:
        return [str(card["id"]) for card in payload["data"]]
    except (KeyError, TypeError) as exc:
        raise WireError(f"/v1/models answered {str(payload)[:200]!r}") from exc


@dataclass
class Completion:
    """What one chat completion produced, plain or streamed."""

    text: str = ""
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    completion_tokens: int | None = None

    @property
    def num_tokens(self) -> int:
        if self.completion_tokens is not None:
            return self.completion_tokens
        return len(self.token_ids or [])


def parse_completion(payload: Any) -> Completion:
    """A non-streamed chat.completion -> Completion; WireError on another shape."""
    try:
        choice = payload["choices"][0]
        content = choice["message"].get("content") or ""
        token_ids = choice.get("token_ids")
        usage = payload.get("usage") or {}
        if not isinstance(content, str) or not (
            token_ids is None or all(isinstance(t, int) for t in token_ids)
        ):
            raise TypeError("content must be a string and token_ids integers")
        return Completion(
            text=content,
            token_ids=None if token_ids is None else list(token_ids),
            finish_reason=choice.get("finish_reason"),
            completion_tokens=usage.get("completion_tokens"),
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise WireError(
            f"expected a chat completion, got {str(payload)[:200]!r}"
        ) from exc


@dataclass
class StreamReader:
    """Accumulates ``data:`` lines of a streamed chat completion."""

    completion: Completion = field(default_factory=Completion)
    done: bool = False
    _pieces: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str:
        """Take one SSE line; returns the new text piece ('' when none).

        Raises WireError on a malformed chunk or an error event.
        """
        line = line.strip()
        if not line.startswith("data:"):
            return ""  # blank keep-alive lines, comments, event names
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            self.done = True
            return ""
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise WireError(f"unreadable stream chunk {data[:200]!r}") from exc
        if isinstance(chunk, dict) and "error" in chunk:
            raise WireError(f"engine error mid-stream: {error_detail(data.encode())}")
        try:
            if chunk.get("usage"):
                self.completion.completion_tokens = chunk["usage"].get(
                    "completion_tokens"
                )
            if not chunk.get("choices"):
                return ""
            choice = chunk["choices"][0]
            piece = (choice.get("delta") or {}).get("content") or ""
            ids = choice.get("token_ids")
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise WireError(f"expected a completion chunk, got {data[:200]!r}") from exc
        if ids is not None:
            self.completion.token_ids = (self.completion.token_ids or []) + list(ids)
        if choice.get("finish_reason"):
            self.completion.finish_reason = choice["finish_reason"]
        self._pieces.append(piece)
        self.completion.text = "".join(self._pieces)
        return piece
