"""Loading, starters and model choice over the real server and its socket.

The slow load is made deterministic without sleeps: the replay recording is a
named pipe (FIFO), so the server's load blocks reading it until the test
writes the recording; only then can the model be ready.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from chat.samples import SAMPLES
from tests.recorded import REPLAY_DOG, REPLAY_RECORDING
from tests.support import api_inputs as inputs
from tests.support.chat_client import ChatClient, start_server

pytestmark = pytest.mark.e2e

LOADING = "loading the model"
NAMES = ["replay:mix-224.json", "replay:mix-448.json"]  # two_models, as shown


def _health(server) -> dict[str, Any]:
    return httpx.get(f"{server.url}/health", timeout=10).json()


def _step(client: ChatClient, name: str) -> list[dict[str, Any]]:
    """Every message/update of the steps called ``name``, in arrival order."""
    return [m for m in (*client.messages, *client.steps) if m.get("name") == name]


async def _release(fifo: Path, recording: dict[str, str]) -> None:
    """Write the recording into the FIFO, which the server's load is blocked
    reading; fails (instead of hanging) when the server never opens it."""
    written = threading.Event()

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as handle:  # waits for the reader
            handle.write(json.dumps(recording))
        written.set()

    threading.Thread(target=write, name="release-fifo", daemon=True).start()
    assert await asyncio.to_thread(written.wait, 120), "the server never read it"


@pytest.fixture(scope="module")
def gated(synthetic_vae_path, tmp_path_factory):
    """A server whose model is not loaded until the test releases the FIFO."""
    tmp = tmp_path_factory.mktemp("gated")
    fifo = tmp / "recording.json"
    os.mkfifo(fifo)
    env = {
        "MODEL_ID": f"replay:{fifo}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(tmp / "data"),
        "LOAD_ON_START": "false",
        "RATE_LIMIT": "100000",
    }
    process = start_server(env, tmp / "server.log")
    try:
        yield process, fifo
    finally:
        process.stop()


async def test_requests_sent_while_loading_wait_visibly_then_run(gated) -> None:
    server, fifo = gated
    assert _health(server)["model_state"] == "idle"  # LOAD_ON_START=false
    first, second = ChatClient(server.url), ChatClient(server.url)
    await first.connect()
    await second.connect()
    try:
        photo = [("cat.png", inputs.png((100, 80)))]
        first_reply = asyncio.create_task(
            first.send("segment the cat", photo, timeout_s=240)
        )
        await first.wait_for(lambda: _step(first, LOADING), timeout_s=120)
        assert _health(server)["model_state"] == "loading"  # the chat started it
        second_reply = asyncio.create_task(
            second.send("detect cat ; dog", photo, timeout_s=240)
        )
        await second.wait_for(lambda: _step(second, LOADING), timeout_s=120)
        assert not first_reply.done() and not second_reply.done()  # both wait

        await _release(fifo, REPLAY_RECORDING)
        first_messages = await first_reply
        second_messages = await second_reply
    finally:
        await first.close()
        await second.close()
    assert "cat" in first_messages[-1]["output"]
    assert "dog" in second_messages[-1]["output"]
    assert not any("try again" in m["output"] for m in first_messages)
    for client in (first, second):
        outputs = [m.get("output") or "" for m in _step(client, LOADING)]
        assert any("ready" in text for text in outputs), outputs
    assert _health(server)["model_state"] == "ready"


async def test_a_starter_brings_its_sample_photo(gated) -> None:
    server, fifo = gated
    if _health(server)["model_state"] == "idle":  # run alone: load it first
        early = httpx.post(  # an API request starts the load, answers 503
            f"{server.url}/segment",
            data={"prompt": "segment cat"},
            files={"image_file": ("a.png", inputs.png((40, 30)), "image/png")},
            timeout=30,
        )
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "model_loading"
        assert early.headers["Retry-After"].isdigit()
        await _release(fifo, REPLAY_RECORDING)
        server.wait_ready()
    client = ChatClient(server.url)
    await client.connect()
    try:
        messages = await client.send(SAMPLES[0].message, timeout_s=240)  # no photo
    finally:
        await client.close()
    texts = [m["output"] for m in messages]
    assert any("Chelsea the cat" in t and "scikit-image" in t for t in texts)
    reading = [m.get("output") or "" for m in _step(client, "reading image")]
    assert any(r.startswith("451x300 RGB") for r in reading)  # skimage chelsea()
    assert "cat" in texts[-1]


# Two models: the chat's dropdown and the API's model_id ----------------------


@pytest.fixture(scope="module")
def two_models(synthetic_vae_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-models")
    first, second = tmp / "mix-224.json", tmp / "mix-448.json"
    first.write_text(json.dumps(REPLAY_RECORDING), encoding="utf-8")
    tabby = {"segment cat": REPLAY_DOG.replace(" dog", " tabby cat")}
    second.write_text(json.dumps(tabby), encoding="utf-8")
    ids = [f"replay:{first}", f"replay:{second}"]  # clients see NAMES
    env = {
        "MODELS": ",".join(ids),
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(tmp / "data"),
        "RATE_LIMIT": "100000",
    }
    process = start_server(env, tmp / "server.log")
    try:
        process.wait_ready()
        yield process, ids
    finally:
        process.stop()


async def test_chat_settings_offer_the_models_and_the_choice_is_used(
    two_models,
) -> None:
    server, _ = two_models
    client = ChatClient(server.url)
    panels: list[list[dict[str, Any]]] = []
    client.sio.on("chat_settings", lambda widgets: panels.append(widgets))
    await client.connect()
    try:
        await client.wait_for(lambda: panels, timeout_s=30)
        (dropdown,) = [w for w in panels[-1] if w.get("id") == "model"]
        items = {item["label"]: item["value"] for item in dropdown["items"]}
        assert items == {"mix-224.json": NAMES[0], "mix-448.json": NAMES[1]}
        assert dropdown["initial"] == NAMES[0]  # the first of MODELS, no path

        photo = [("cat.png", inputs.png((100, 80)))]
        default = await client.send("segment the cat", photo)
        assert "tabby" not in default[-1]["output"]
        ended = client.tasks_ended
        await client.sio.emit("chat_settings_change", {"model": NAMES[1]})
        await client.wait_for(lambda: client.tasks_ended > ended)  # handler ran
        chosen = await client.send("segment the cat")
        assert "tabby cat" in chosen[-1]["output"]
    finally:
        await client.close()


def test_openai_door_lists_and_serves_every_model(two_models) -> None:
    import base64

    import openai

    server, ids = two_models
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="-", max_retries=8)
    listed = [model.id for model in client.models.list()]
    photo = "data:image/png;base64," + base64.b64encode(inputs.png((64, 48))).decode()
    content = [
        {"type": "text", "text": "segment the cat"},
        {"type": "image_url", "image_url": {"url": photo}},
    ]
    answers = {
        name: client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": content}]
        )
        .choices[0]
        .message.content
        for name in ("paligemma", *NAMES, ids[1])  # a full id is still served
    }
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="google/paligemma2-28b-mix-448",
            messages=[{"role": "user", "content": content}],
        )
    assert listed == ["paligemma", *NAMES]  # the alias, then MODELS by name
    assert "| cat |" in answers["paligemma"] and "tabby" not in answers["paligemma"]
    assert "| cat |" in answers[NAMES[0]] and "tabby" not in answers[NAMES[0]]
    assert "| tabby cat |" in answers[NAMES[1]]
    assert "| tabby cat |" in answers[ids[1]]


def test_api_model_id_chooses_the_model(two_models) -> None:
    server, ids = two_models
    labels = {}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for model_id in (None, *NAMES, ids[1]):
            data = {"prompt": "segment cat"} | (
                {"model_id": model_id} if model_id else {}
            )
            response = http.post(
                "/v1/analyze",
                data=data,
                files={"images": ("a.png", inputs.png((64, 48)), "image/png")},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            (result,) = body["results"]
            labels[model_id] = ([d["label"] for d in result["detections"]], body)
        unknown = http.post(
            "/segment",
            data={"prompt": "segment cat", "model_id": "google/paligemma2-28b-mix-448"},
            files={"image_file": ("a.png", inputs.png((64, 48)), "image/png")},
        )
        health = http.get("/health").json()
    assert labels[None][0] == ["cat"] and labels[None][1]["model_id"] == NAMES[0]
    assert labels[NAMES[0]][0] == ["cat"]
    tabby, body = labels[NAMES[1]]
    assert tabby == ["tabby cat"] and body["model_id"] == NAMES[1]
    assert labels[ids[1]][0] == ["tabby cat"]  # a full id is still served
    assert unknown.status_code == 403
    assert unknown.json()["error"]["code"] == "model_not_allowed"
    assert [m["id"] for m in health["models"]] == NAMES
    assert {m["state"] for m in health["models"]} == {"ready"}
    assert [m["error"] for m in health["models"]] == [None, None]
