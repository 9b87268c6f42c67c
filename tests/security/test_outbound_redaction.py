"""One outbound filter: no BACKEND_URL secret and no local folder reaches a client.

Two real servers. ``backend``: BACKEND=openai with a credentialed
BACKEND_URL (``http://agent:<password>@127.0.0.1:<port>/v1?api_key=<key>``)
pointing at a loopback stand-in engine that breaks the connection on one
photo colour, so every error path names the engine. ``local``: MODEL_ID is a
recording deep in a private folder, loaded on the first request (the chat's
loading step shows). Each row of the table drives one door and checks the
bytes the client got: the engine (or model) is named, its secrets and
folders are not.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.security.conftest import RECORDING
from tests.support.chat_client import ChatClient, ServerProcess, start_server
from tests.support.images import solid
from tests.support.openai_fake import FakeEngine, FakeEngineServer

pytestmark = pytest.mark.e2e

PASSWORD = "pw-0f5e1c77"
API_KEY = "key-9b2d7a13"
FAIL_RGB = (250, 10, 10)  # the stand-in engine drops the connection on this photo
OK_RGB = (90, 90, 90)
SHOWN_LOCAL = "replay:recording.json"  # the local model's name, no folder


def _answer(prompt: str, image: Image.Image, max_tokens: int) -> str:
    red, green, _ = image.convert("RGB").getpixel((image.width // 2, 0))
    if red > 200 and green < 60:
        raise ConnectionAbortedError("the stand-in engine fails on red photos")
    return "A grey square."


@pytest.fixture(scope="module")
def engine_server():
    with FakeEngineServer(FakeEngine(answer=_answer)) as running:
        yield running


@pytest.fixture(scope="module")
def backend(secure_server, engine_server) -> ServerProcess:
    port = engine_server.url.rsplit(":", 1)[1]
    url = f"http://agent:{PASSWORD}@127.0.0.1:{port}/v1?api_key={API_KEY}"
    return secure_server(BACKEND="openai", BACKEND_URL=url, MODEL_ID="auto")


@pytest.fixture(scope="module")
def local(attack_root: Path, synthetic_vae_path: Path) -> ServerProcess:
    """MODEL_ID deep in a private folder; loads on the first request."""
    folder = attack_root / "private-models" / "tiny-pg2"
    folder.mkdir(parents=True)
    (folder / "recording.json").write_text(json.dumps(RECORDING), encoding="utf-8")
    env = {
        "MODEL_ID": f"replay:{folder / 'recording.json'}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(attack_root / "local-data"),
        "HF_HUB_OFFLINE": "1",
        "PERSIST": "off",
        "LOAD_ON_START": "false",
    }
    server = start_server(env, attack_root / "local.log")
    yield server
    server.stop()


def _png(rgb: tuple[int, int, int]) -> bytes:
    return solid(rgb, "PNG", size=(48, 32))


def _images(*colours: tuple[int, int, int]) -> list[tuple[str, tuple]]:
    return [
        ("images", (f"p{i}.png", _png(c), "image/png")) for i, c in enumerate(colours)
    ]


def _analyze(server: ServerProcess, colours: tuple, **form: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/analyze",
        data={"prompt": "caption en", **form},
        files=_images(*colours),
        timeout=120,
    )


def _completion(server: ServerProcess, *, stream: bool) -> httpx.Response:
    photo = "data:image/png;base64," + base64.b64encode(_png(FAIL_RGB)).decode()
    content = [
        {"type": "text", "text": "caption this"},
        {"type": "image_url", "image_url": {"url": photo}},
    ]
    body = {"messages": [{"role": "user", "content": content}], "stream": stream}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


async def _chat(server: ServerProcess, colour: tuple[int, int, int]) -> str:
    """Every socket event the chat sent for one captioned photo, as text."""
    client = ChatClient(server.url)
    others: list[Any] = []
    client.sio.on("*", lambda event, data=None: others.append([event, data]))
    await client.connect()
    try:
        await client.send("caption this", [("photo.png", _png(colour))])
    finally:
        await client.close()
    seen = [client.messages, client.steps, client.streams, client.elements, others]
    return json.dumps(seen, ensure_ascii=False, default=str)


def _loaded(server: ServerProcess) -> None:
    """LOAD_ON_START=false: the first API request starts the load."""
    _analyze(server, (OK_RGB,))
    server.wait_ready()


# Row: (case, server, drive -> client's text, status expected, text expected).
Drive = Callable[[ServerProcess], Awaitable[tuple[int, str]]]


async def _http(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text


async def analyze_one_failing(server):
    return await _http(_analyze(server, (FAIL_RGB,)))


async def analyze_two_all_failed(server):
    return await _http(_analyze(server, (FAIL_RGB, FAIL_RGB)))


async def analyze_item_error(server):
    return await _http(_analyze(server, (OK_RGB, FAIL_RGB)))


async def analyze_coco_item_error(server):
    return await _http(_analyze(server, (OK_RGB, FAIL_RGB), format="coco"))


async def completion_plain(server):
    return await _http(_completion(server, stream=False))


async def completion_streamed(server):
    return await _http(_completion(server, stream=True))


async def health(server):
    return await _http(httpx.get(f"{server.url}/health"))


async def ready(server):
    return await _http(httpx.get(f"{server.url}/ready"))


async def chat_error(server):
    return 200, await _chat(server, FAIL_RGB)


async def chat_loading_step(server):  # runs first: the model is not loaded yet
    shown = await _chat(server, OK_RGB)
    assert "loading the model" in shown, "the loading step did not show"
    return 200, shown


async def models(server):
    _loaded(server)
    return await _http(httpx.get(f"{server.url}/v1/models"))


async def analyze_model_id(server):
    return await _http(_analyze(server, (OK_RGB,)))


async def analyze_unknown_model(server):
    return await _http(_analyze(server, (OK_RGB,), model_id="evil/model"))


ROWS = [
    ("backend", analyze_one_failing, 503, "127.0.0.1:"),  # all-failed body
    ("backend", analyze_two_all_failed, 503, "127.0.0.1:"),  # + its item errors
    ("backend", analyze_item_error, 200, "127.0.0.1:"),  # one item failed
    ("backend", analyze_coco_item_error, 200, "127.0.0.1:"),  # COCO "errors"
    ("backend", completion_plain, 503, "127.0.0.1:"),  # the JSON error
    ("backend", completion_streamed, 200, "127.0.0.1:"),  # SSE "⚠️ ..." chunk
    ("backend", health, 200, '"status":"ok"'),  # case: /health
    ("backend", ready, 200, '"status":"ready"'),  # case: /ready
    ("backend", chat_error, 200, "127.0.0.1:"),  # the chat's error message
    ("local", chat_loading_step, 200, SHOWN_LOCAL),  # the loading step
    ("local", models, 200, SHOWN_LOCAL),  # GET /v1/models ids
    ("local", analyze_model_id, 200, SHOWN_LOCAL),  # /v1/analyze's model_id
    ("local", health, 200, SHOWN_LOCAL),  # /health's model ids
    ("local", ready, 200, SHOWN_LOCAL),  # /ready's model_id
    ("local", analyze_unknown_model, 403, SHOWN_LOCAL),  # names what is served
]


@pytest.mark.parametrize(
    ("server_name", "drive", "status", "expected"),
    ROWS,
    ids=[f"{row[0]}-{row[1].__name__}" for row in ROWS],
)
async def test_no_secret_or_folder_reaches_the_client(
    request, attack_root, server_name, drive: Drive, status, expected
):
    server = request.getfixturevalue(server_name)
    got_status, shown = await drive(server)
    assert got_status == status, shown[:2000]
    assert expected in shown, shown[:2000]  # the path under test really ran
    for secret in (PASSWORD, API_KEY, "agent:", str(attack_root)):
        assert secret not in shown, f"{secret!r} reached the client: {shown[:3000]}"
    assert "private-models" not in shown, shown[:3000]
