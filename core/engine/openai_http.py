"""HTTP to an OpenAI-compatible engine: JSON calls and streamed answers.

Every failure becomes ModelUnavailableError naming the engine (``root``) and
the fix; ``core.engine.openai.OpenAIBackend`` holds one ``EngineHttp``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from core.engine.openai_errors import engine_errors, malformed, raise_for_status
from core.engine.openai_wire import (
    Completion,
    StreamReader,
    WireError,
    parse_completion,
)
from core.errors import ModelUnavailableError


class EngineHttp:
    """Requests to the engine at ``root`` through ``client``; each one within
    ``timeout_s`` (BACKEND_TIMEOUT_S). Thread-safe: httpx.Client is."""

    def __init__(self, root: str, client: httpx.Client, timeout_s: float) -> None:
        self.root = root
        self.client = client
        self.timeout_s = timeout_s

    def stream(
        self,
        body: dict[str, Any],
        on_text: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> Completion:
        """POST ``body`` to /v1/chat/completions and read the answer stream,
        ``on_text`` per piece; at the next piece once ``cancel`` is set, the
        stream is closed (the engine stops) and the pieces so far returned."""
        reader = StreamReader()
        with engine_errors(self.root, self.timeout_s):
            with self.client.stream(
                "POST", "/v1/chat/completions", json=body
            ) as response:
                if response.is_error:
                    response.read()
                    raise_for_status(self.root, response)
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    return self._unstreamed(response, kind, on_text)
                for line in response.iter_lines():
                    if cancel is not None and cancel.is_set():
                        return reader.completion  # closing the stream stops it
                    piece = self.wire(reader.feed, line)
                    if piece:
                        on_text(piece)
        if not reader.done and reader.completion.finish_reason is None:
            raise ModelUnavailableError(
                f"The inference engine at {self.root} ended the answer stream early "
                "(no finish_reason, no [DONE]); the answer is incomplete, try again."
            )
        return reader.completion

    def _unstreamed(
        self, response: httpx.Response, kind: str, on_text: Callable[[str], None]
    ) -> Completion:
        """A proxy that ignored ``stream``: one JSON completion, one piece."""
        response.read()
        if not kind.startswith("application/json"):
            raise malformed(self.root, f"expected an event stream, got {kind!r}")
        try:
            completion = parse_completion(response.json())
        except (ValueError, WireError) as exc:
            raise malformed(self.root, f"unreadable JSON answer: {exc}") from exc
        if completion.text:
            on_text(completion.text)
        return completion

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; its JSON answer. Every failure -> ModelUnavailableError."""
        with engine_errors(self.root, self.timeout_s):
            response = self.client.request(method, path, json=body)
            raise_for_status(self.root, response)
            try:
                return response.json()
            except json.JSONDecodeError as exc:
                raise malformed(self.root, f"{path} answered non-JSON") from exc

    def wire(self, parse: Callable[[Any], Any], value: Any) -> Any:
        """``parse(value)``; a WireError becomes "malformed answer"."""
        try:
            return parse(value)
        except WireError as exc:
            raise malformed(self.root, str(exc)) from exc
