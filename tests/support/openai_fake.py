"""A loopback HTTP server speaking vLLM's OpenAI chat-completions shape.

It answers with a real function of (prompt, image) (a recording, or a local
model), tokenises the answer into (text piece, token id) pairs and serves it
plain or streamed, token ids included, as ``vllm serve`` does. Knobs make it
misbehave the ways an engine can: errors, delays, cut streams, mangled text.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

from core.engine.openai_wire import LOC_BASE_ID, SEG_BASE_ID

EOS_ID = 1
_PIECE = re.compile(r"<loc\d{4}>|<seg\d{3}>|.", re.DOTALL)

Answer = Callable[[str, Image.Image, int], str]  # prompt, image, max_tokens
Encode = Callable[[str], list[tuple[str, int]]]


def encode_chars(text: str, loc_base: int = LOC_BASE_ID) -> list[tuple[str, int]]:
    """loc/seg tokens -> their ids (``loc_base``..); any other char -> 10000+ord."""
    seg_base = loc_base + (SEG_BASE_ID - LOC_BASE_ID)
    pairs = []
    for piece in _PIECE.findall(text):
        if piece.startswith("<loc"):
            pairs.append((piece, loc_base + int(piece[4:8])))
        elif piece.startswith("<seg"):
            pairs.append((piece, seg_base + int(piece[4:7])))
        else:
            pairs.append((piece, 10_000 + ord(piece)))
    return pairs


def encode_chunks(text: str) -> list[tuple[str, int]]:
    """Like encode_chars, but each run of plain text is one token (never more
    tokens than the model generated, so replayed answers are not cut)."""
    pairs = []
    for piece in re.split(r"(<loc\d{4}>|<seg\d{3}>)", text):
        if piece:
            pairs.extend(encode_chars(piece) if piece[0] == "<" else [(piece, 10_000)])
    return pairs


@dataclass
class FakeEngine:
    """Knobs are read per request, so a test may change them between calls."""

    answer: Answer
    encode: Encode = encode_chars
    models: list[str] = field(default_factory=lambda: ["google/paligemma2-3b-mix-448"])
    tokenize_ids: list[int] | None = None  # /tokenize answer; None: from encode
    with_token_ids: bool = True
    mangle_text: bool = False  # send wrong loc/seg numbers in the text
    error: tuple[int, str] | None = None  # (status, body) for chat requests
    delay_s: float = 0.0  # before the answer starts
    token_delay_s: float = 0.0  # between streamed tokens
    cut_stream_after: int | None = None  # close the stream after N tokens
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)

    def complete(self, body: dict[str, Any]) -> tuple[list[tuple[str, int]], str]:
        """(text, id) pairs of the answer within max_tokens, and finish_reason."""
        content = body["messages"][0]["content"]
        prompt = next(part["text"] for part in content if part["type"] == "text")
        url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        self.images.append(image.convert("RGB"))
        pairs = self.encode(self.answer(prompt, self.images[-1], body["max_tokens"]))
        if len(pairs) > body["max_tokens"]:
            return pairs[: body["max_tokens"]], "length"
        return [*pairs, ("", EOS_ID)], "stop"  # EOS: an id, no text (as vLLM)

    def text_of(self, pairs: list[tuple[str, int]]) -> str:
        text = "".join(piece for piece, _ in pairs)
        if self.mangle_text:  # right layout, wrong numbers: only ids tell the truth
            text = re.sub(r"<(loc|seg)0", r"<\g<1>9", text)
        return text


class _Handler(BaseHTTPRequestHandler):
    engine: FakeEngine

    def log_message(self, *args: Any) -> None:
        """Quiet: no stderr lines per request."""

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            cards = [{"id": m, "object": "model"} for m in self.engine.models]
            self._json(200, {"object": "list", "data": cards})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        engine = self.engine
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            ids = engine.tokenize_ids
            if ids is None:
                ids = [i for _, i in engine.encode(body["prompt"])]
            self._json(200, {"tokens": ids, "count": len(ids), "max_model_len": 2048})
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        engine.requests.append(body)
        engine.headers.append(dict(self.headers))
        time.sleep(engine.delay_s)
        if engine.error is not None:
            status, text = engine.error
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        pairs, finish = engine.complete(body)
        ids = [i for _, i in pairs]
        if not body.get("stream"):
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": engine.text_of(pairs)},
                "finish_reason": finish,
            }
            if engine.with_token_ids:
                choice["token_ids"] = ids
            usage = {"prompt_tokens": 10, "completion_tokens": len(ids)}
            self._json(
                200, {"object": "chat.completion", "choices": [choice], "usage": usage}
            )
            return
        self._stream(pairs, finish)

    def _stream(self, pairs: list[tuple[str, int]], finish: str) -> None:
        engine = self.engine
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for index, pair in enumerate(pairs):
            if engine.cut_stream_after is not None and index >= engine.cut_stream_after:
                return  # the connection closes without finish_reason or [DONE]
            time.sleep(engine.token_delay_s)
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": engine.text_of([pair])},
                "finish_reason": finish if index == len(pairs) - 1 else None,
            }
            if engine.with_token_ids:
                choice["token_ids"] = [pair[1]]
            self._event({"object": "chat.completion.chunk", "choices": [choice]})
        usage = {"prompt_tokens": 10, "completion_tokens": len(pairs)}
        self._event({"object": "chat.completion.chunk", "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: Any) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


class FakeEngineServer:
    """Serves a FakeEngine on 127.0.0.1 in a thread; use as a context manager."""

    def __init__(self, engine: FakeEngine, port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"engine": engine})
        self.engine = engine
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeEngineServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
