"""Chat downloads over the real server: one button per export format under each
answer, the file built when the button is clicked (POST /project/action, as
the web page does), from the turn that answer showed, not the newest one."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from core.export.formats import FORMATS, get_format
from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e

SIZE_WH = (320, 240)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", SIZE_WH, "orange").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="downloads")


def table_areas(answer: str) -> list[int]:
    rows = [line.strip("| ").split(" | ") for line in answer.splitlines()]
    rows = [row for row in rows if len(row) == 7][1:]  # without the header
    return [int(row[6].replace(",", "")) for row in rows]


async def test_every_button_builds_its_file_when_clicked(server, tmp_path) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        (answer,) = await client.send(
            "segment the cat and the dog", [("pets.png", png_bytes())]
        )
        assert [e["type"] for e in client.elements_for(answer["id"])] == ["image"]
        files = {}
        for fmt in FORMATS:
            name, data = await client.download_file(answer["id"], fmt.label)
            files[fmt.name] = (name, data)
        # each button goes once clicked (its file is attached)
        await client.wait_for(lambda: client.downloads_for(answer["id"]) == [])
    finally:
        await client.close()
    assert {k: v[0] for k, v in files.items()} == {
        fmt.name: fmt.file_name("pets") for fmt in FORMATS
    }
    areas = table_areas(answer["output"])
    assert len(areas) == 2 and all(areas)
    coco_path = tmp_path / "pets.coco.json"
    coco_path.write_bytes(files["coco"][1])
    coco = COCO(str(coco_path))
    annotations = coco.loadAnns(coco.getAnnIds())
    assert [int(coco.annToMask(a).sum()) for a in annotations] == areas
    with zipfile.ZipFile(io.BytesIO(files["zip"][1])) as archive:
        masks = sorted(n for n in archive.namelist() if n.startswith("pets/"))
        assert masks == ["pets/01_cat.png", "pets/02_dog.png"]
        pngs = [np.asarray(Image.open(archive.open(n))) > 0 for n in masks]
        assert [int(m.sum()) for m in pngs] == areas
    with zipfile.ZipFile(io.BytesIO(files["yolo"][1])) as archive:
        assert archive.read("classes.txt") == b"cat\ndog\n"
    (task,) = json.loads(files["labelstudio"][1])
    regions = task["predictions"][0]["result"]
    assert {r["value"]["polygonlabels"][0] for r in regions} == {"cat", "dog"}
    assert {(r["original_width"], r["original_height"]) for r in regions} == {SIZE_WH}


async def test_a_button_exports_its_own_answer_and_stale_ones_say_so(server) -> None:
    client = ChatClient(server.url)
    await client.connect()
    coco = get_format("coco")
    try:
        (first,) = await client.send("segment the cat", [("cat.png", png_bytes())])
        (second,) = await client.send("also the dog")
        # The first answer's button: one object, though the newest answer has two.
        _, data = await client.download_file(first["id"], coco.label)
        assert len(json.loads(data)["annotations"]) == 1
        await client.send("undo")  # takes the second answer back
        (button,) = [
            a for a in client.downloads_for(second["id"]) if a["label"] == coco.label
        ]
        forged = {**button, "payload": {**button["payload"], "format": "xml"}}
        for action in (button, forged):
            before = len(client.assistant_messages())
            await client.click(action)
            await client.wait_for(lambda n=before: len(client.assistant_messages()) > n)
            assert "no longer kept" in client.assistant_messages()[-1]["output"]
        # No file was built for the stale or forged buttons: the overlay only.
        kinds = [e["type"] for e in client.elements_for(second["id"])]
        assert kinds == ["image"]
    finally:
        await client.close()
