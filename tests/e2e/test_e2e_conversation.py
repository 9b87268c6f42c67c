"""A whole conversation over the real Chainlit server: uploads, refinements,
switching images, undo. Runs on a replaying model (exact answers) and on the
tiny random PaliGemma 2 (real generate path; answers are random)."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient, start_server

pytestmark = pytest.mark.e2e

# (what the user types, uploads, the prompt the model must get, labels in the reply)
FLOW = [
    ("segment the cat", ["cat.png"], "segment cat", ["cat"]),
    ("also the dog", [], "segment cat ; dog", ["cat", "dog"]),
    ("now as boxes", [], "detect cat ; dog", ["cat", "dog"]),
    ("remove the dog", [], "detect cat", ["cat"]),
    ("detect car", ["car.png"], "detect car", ["car"]),
    ("same for the first photo", [], "detect car", ["car"]),
]


def png_bytes(size, color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


UPLOADS = {
    "cat.png": png_bytes((320, 240), "orange"),
    "car.png": png_bytes((200, 300), "navy"),
}


@pytest.fixture(scope="module", params=["replay", "tiny"])
def server(request, tiny_model_dir, synthetic_vae_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"server-{request.param}")
    if request.param == "replay":
        recording = folder / "recording.json"
        recording.write_text(json.dumps(REPLAY_RECORDING))
        model_id = f"replay:{recording}"
    else:
        model_id = str(tiny_model_dir)
    env = {
        "MODEL_ID": model_id,
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(folder / "data"),
        "HF_HUB_OFFLINE": "1",
    }
    process = start_server(env, folder / "server.log")
    try:
        process.wait_ready()
        yield request.param, process
    finally:
        process.stop()


def generating_inputs(client: ChatClient) -> list[str]:
    seen: dict[str, str] = {}
    for step in client.messages + client.steps:
        if step.get("name") == "generating":
            seen[step["id"]] = step.get("input", "")
    return list(seen.values())


async def test_refine_switch_images_and_undo(server):
    kind, process = server
    client = ChatClient(process.url)
    await client.connect()
    try:
        for text, uploads, prompt, labels in FLOW:
            files = [(name, UPLOADS[name]) for name in uploads]
            replies = await client.send(text, files)
            answer = replies[-1]["output"]
            assert generating_inputs(client)[-1] == prompt, (
                text,
                process.log()[-2000:],
            )
            assert f"`{prompt}`" in answer
            kinds = [e["type"] for e in client.elements_for(replies[-1]["id"])]
            assert kinds.count("image") == 1  # the overlay
            if kind == "replay":
                rows = [line for line in answer.splitlines() if line.startswith("| ")]
                assert [row.split(" | ")[1] for row in rows[1:]] == labels
                assert kinds.count("file") == 2  # zip + COCO JSON
        # The last turn ran on the first photo: its reply names it.
        assert "cat.png" in client.assistant_messages()[-1]["output"]
        assert generating_inputs(client) == [step[2] for step in FLOW]

        replies = await client.send("undo")
        texts = [r["output"] for r in replies]
        assert any("Undone" in t for t in texts)
        assert "`detect cat`" in texts[-1] and "cat.png" in texts[-1]
        assert len(generating_inputs(client)) == len(FLOW)  # undo never re-generates

        replies = await client.send("export all")
        export = replies[-1]
        assert "Exports of 2 image(s) (*cat.png*, *car.png*)" in export["output"]
        files = sorted(e["name"] for e in client.elements_for(export["id"]))
        assert files == ["export-1-masks-coco-yolo.zip", "export-1.coco.json"]
        assert len(generating_inputs(client)) == len(FLOW)  # exports never generate

        replies = await client.send("on image 3")
        assert "no image 3" in replies[-1]["output"].lower()
    finally:
        await client.close()


async def test_request_before_the_photo_runs_when_it_arrives(server):
    _, process = server
    client = ChatClient(process.url)
    await client.connect()
    try:
        (reply,) = await client.send("segment the cat")
        assert "Attach a photo first" in reply["output"]
        replies = await client.send("", [("cat.png", UPLOADS["cat.png"])])
        assert generating_inputs(client) == ["segment cat"]
        assert "`segment cat`" in replies[-1]["output"]
    finally:
        await client.close()
