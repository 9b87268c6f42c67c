"""A 12 MP phone photo in the real chat: decoded once, overlay at display size,
boxes and downloads in the photo's own pixels (real server, replay model).
Downloads are built when their button is clicked, never after the answer."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from core.export.formats import FORMATS, get_format
from tests.recorded import REPLAY_RECORDING
from tests.support.api_inputs import ramp_jpeg
from tests.support.chat_client import ChatClient, start_server

PHOTO_WH = (4032, 3024)
ZIP, COCO_JSON = get_format("zip"), get_format("coco")


@pytest.fixture(scope="module")
def server(synthetic_vae_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos-server")
    recording = folder / "recording.json"
    recording.write_text(json.dumps(REPLAY_RECORDING))
    env = {
        "MODEL_ID": f"replay:{recording}",
        "VAE_PATH": str(synthetic_vae_path),
        "DATA_DIR": str(folder / "data"),
        "HF_HUB_OFFLINE": "1",
        "RATE_LIMIT": "0",
    }
    process = start_server(env, folder / "server.log")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


async def test_a_phone_photo_is_decoded_once_and_exported_full_size(
    server, tmp_path
) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        await client.send(
            "segment cat", [("phone.jpg", ramp_jpeg(PHOTO_WH))], timeout_s=300
        )
        for _ in range(2):
            replies = await client.send("segment cat", timeout_s=300)
        answer = replies[-1]
        files = {e["name"]: e for e in client.elements_for(answer["id"])}
        assert list(files) == ["phone-overlay.jpg"]  # nothing built before a click
        buttons = [a["label"] for a in client.downloads_for(answer["id"])]
        assert buttons == [fmt.label for fmt in FORMATS]
        overlay = Image.open(io.BytesIO(client.download(files["phone-overlay.jpg"])))
        zip_name, zip_bytes = await client.download_file(answer["id"], ZIP.label)
        coco_name, coco_bytes = await client.download_file(
            answer["id"], COCO_JSON.label
        )
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        coco = json.loads(coco_bytes)
        coco_path = tmp_path / coco_name
        coco_path.write_bytes(coco_bytes)
        loaded = COCO(str(coco_path))  # pycocotools reads the clicked file
        (ann_id,) = loaded.getAnnIds()
        decoded = loaded.annToMask(loaded.loadAnns([ann_id])[0])
        await client.wait_for(
            lambda: len(client.downloads_for(answer["id"])) == len(FORMATS) - 2
        )
        clicked = [a["label"] for a in client.downloads_for(answer["id"])]
    finally:
        await client.close()
    log = server.log()
    assert log.count("decoded an upload once") == 1, log[-3000:]
    assert "4032x3024 -> display 2016x1512" in log
    # REPLAY_CAT: <loc0100><loc0100><loc0700><loc0500> = y1 x1 y2 x2 in 1/1024
    row = re.search(
        r"1 \| cat \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", answer["output"]
    )
    assert row is not None, answer["output"]
    assert tuple(int(v) for v in row.groups()) == (394, 295, 1969, 2067)
    assert "(4032x3024)" in answer["output"]
    assert overlay.size == (2016, 1512)  # drawn on the display copy
    (image,) = coco["images"]
    assert (image["width"], image["height"]) == PHOTO_WH
    (annotation,) = coco["annotations"]
    x, y, w, h = annotation["bbox"]
    assert 394 <= x and 295 <= y and x + w <= 1969 and y + h <= 2067
    mask = np.asarray(Image.open(archive.open("phone/01_cat.png")))
    assert mask.shape == (3024, 4032)
    assert int((mask > 0).sum()) == int(annotation["area"]) > 0
    assert np.array_equal(decoded > 0, mask > 0)
    assert (zip_name, coco_name) == ("phone-masks.zip", "phone.coco.json")
    assert "phone/overlay.png" not in archive.namelist()  # shown, not zipped
    # A clicked button goes away; the others stay.
    assert ZIP.label not in clicked and COCO_JSON.label not in clicked
    assert len(clicked) == len(FORMATS) - 2
