"""Everything in the photo and a caption per object, on the real server
(replay model: everything after ``generate`` is the production path), in
the chat over its socket and in REST /v1/analyze."""

from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image

from core.export.formats import get_format
from tests.e2e.test_cli import run_cli
from tests.recorded import CAPTION_EN, REPLAY_RECORDING
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e

NAMES = "detect cat ; dog ; floor"  # what CAPTION_EN names
RECORDING = {
    **REPLAY_RECORDING,
    "caption en": CAPTION_EN,  # the photo's caption, and each crop's
    NAMES: REPLAY_RECORDING["detect cat ; dog"],
    "segment cat ; dog ; floor": REPLAY_RECORDING["segment cat ; dog"],
}


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=RECORDING, name="everything", RATE_LIMIT="100000")


def _png(size=(640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _inputs(client: ChatClient, name: str) -> list[str]:
    """The input of each step called ``name``, once per step (last update)."""
    steps = {
        s["id"]: s for s in client.messages + client.steps if s.get("name") == name
    }
    return [s.get("input", "") for s in steps.values()]


async def test_chat_detect_everything_then_refine(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        replies = await client.send("detect everything", [("pets.png", _png())])
        answer = replies[-1]["output"]
        assert f"`{NAMES}`" in answer, server.log()[-3000:]
        assert "Caption: a cat [1] and a dog [2] on a grey floor [not found]" in answer
        assert "| cat | 62 | 47 | 312 | 328 |" in answer
        assert _inputs(client, "generating")[-2:] == ["caption en", NAMES]
        assert any(NAMES in out for out in client.step_outputs("names"))
        # the turn recorded is the detect one: refinements apply to it
        (only,) = await client.send("only the cat")
        assert "`detect cat`" in only["output"]
        (masks,) = await client.send("now as masks")
        assert "`segment cat`" in masks["output"]
        (undone, again) = await client.send("undo")
        assert "Undone" in undone["output"] and "`detect cat`" in again["output"]
    finally:
        await client.close()


async def test_chat_describe_each_object(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.send("detect cat ; dog", [("pets.png", _png())])
        replies = await client.send("describe each object")
        answer = replies[-1]
        assert "| mask area (px) | caption |" in answer["output"]
        assert f"| — | {CAPTION_EN} |" in answer["output"]
        assert any("2 crops" in i for i in _inputs(client, "captions per object"))
        # the last answer's objects, replayed: "detect cat ; dog" ran once
        assert _inputs(client, "generating") == ["detect cat ; dog"]
        assert _inputs(client, "last answer") == ["detect cat ; dog"]
        # the COCO file is built when its button is clicked (chat.downloads)
        _, data = await client.download_file(answer["id"], get_format("coco").label)
        annotations = json.loads(data)["annotations"]
        assert [a["attributes"] for a in annotations] == [{"caption": CAPTION_EN}] * 2
        # a redraw and "export" replay the kept turn: its captions come back
        (only,) = await client.send("only 2")
        assert f"| dog | 344 | 94 | 594 | 422 | — | {CAPTION_EN} |" in only["output"]
        assert "| cat |" not in only["output"]
        (exported,) = await client.send("export")
        files = client.elements_for(exported["id"])
        coco = [f for f in files if f["name"].endswith("coco.json")]
        assert coco, [f["name"] for f in files]
        kept = json.loads(client.download(coco[0]))["annotations"]
        assert [a["attributes"] for a in kept] == [{"caption": CAPTION_EN}]
    finally:
        await client.close()


@pytest.mark.parametrize(
    "prompt", ["detect everything", "what objects are in this photo and where?"]
)
def test_rest_detect_everything(server, prompt):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.post(
            "/v1/analyze",
            data={"prompt": prompt},
            files={"images": ("pets.png", _png(), "image/png")},
        )
    assert response.status_code == 200, response.text
    (body,) = response.json()["results"]
    assert (body["prompt"], body["caption"]) == (NAMES, CAPTION_EN)
    boxes = [(d["label"], d["box_px"]) for d in body["detections"]]
    assert boxes == [("cat", [62, 47, 312, 328]), ("dog", [344, 94, 594, 422])]


def test_rest_caption_each_object(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.post(
            "/v1/analyze",
            data={"prompt": "caption each cat"},
            files={"images": ("pets.png", _png(), "image/png")},
        )
    assert response.status_code == 200, response.text
    (body,) = response.json()["results"]
    assert body["prompt"] == "detect cat"
    assert [d["caption"] for d in body["detections"]] == [CAPTION_EN]


def test_openai_door_detect_everything(server):
    """The OpenAI-compatible door answers what the chat answers."""
    photo = "data:image/png;base64," + base64.b64encode(_png()).decode()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="-", max_retries=0)
    reply = client.chat.completions.create(
        model="paligemma",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": photo}},
                    {"type": "text", "text": "label everything"},
                ],
            }
        ],
    )
    text = reply.choices[0].message.content
    assert f"`{NAMES}`" in text and "Caption: a cat [1] and a dog [2]" in text, text


def test_cli_describe_each_object(tmp_path, synthetic_vae_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "pets.png").write_bytes(_png())
    recording = tmp_path / "recording.json"
    recording.write_text(json.dumps(RECORDING))
    out = tmp_path / "out"
    model_env = {"MODEL_ID": f"replay:{recording}", "VAE_PATH": str(synthetic_vae_path)}
    args = ["describe each object", str(images), "--out", str(out)]
    proc = run_cli(args, tmp_path, model_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (entry,) = json.loads((out / "results.json").read_text())["images"]
    assert (entry["prompt"], entry["caption"]) == (NAMES, CAPTION_EN)
    assert [d["caption"] for d in entry["detections"]] == [CAPTION_EN] * 2
    coco = json.loads(next(out.glob("*.coco.json")).read_text())
    assert [a["attributes"] for a in coco["annotations"]] == [
        {"caption": CAPTION_EN}
    ] * 2


async def test_chat_everything_asked_before_the_photo(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        (ask,) = await client.send("segment everything")
        assert "`segment everything`" in ask["output"], ask["output"]
        replies = await client.send("", [("pets.png", _png())])
        assert "`segment cat ; dog ; floor`" in replies[-1]["output"]
    finally:
        await client.close()
