""" "Look closely" in the real chat (replay model): tiles with progress, the same
objects as the REST API's tiles=auto, kept for undo, export and redraw."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.recorded import REPLAY_RECORDING
from tests.support.api_inputs import ramp_jpeg
from tests.support.chat_client import ChatClient

pytestmark = pytest.mark.e2e

ROW = re.compile(r"^\|[^|\d]*(\d+) \| (\w+)" + r" \| (\d+)" * 4 + r" \|", re.M)


@pytest.fixture(scope="module")
def server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="closely", RATE_LIMIT="0")


def rows(answer: dict) -> list[tuple[str, tuple[int, ...]]]:
    found = ROW.findall(answer["output"])
    return [(label, tuple(int(v) for v in box)) for _, label, *box in found]


async def look_closely(client: ChatClient, on: bool) -> None:
    ended = client.tasks_ended
    await client.sio.emit("chat_settings_change", {"look_closely": on})
    await client.wait_for(lambda: client.tasks_ended > ended)


async def test_tiles_show_progress_and_match_the_api(server) -> None:
    photo = ramp_jpeg((2000, 1500))  # under the 2048 px display copy: same pixels
    client = ChatClient(server.url)
    await client.connect()
    try:
        plain = await client.send("segment cat", [("big.jpg", photo)], timeout_s=300)
        await look_closely(client, True)
        closely = await client.send("segment cat", timeout_s=300)
        progress = client.step_outputs("looking closely")
    finally:
        await client.close()
    assert len(rows(plain[-1])) == 1  # one cat on the whole photo
    tiled = rows(closely[-1])
    # 2000x1500 is 2x2 tiles of auto; the recording finds a cat in every look
    assert "tile 4 of 4" in progress, progress
    assert "whole photo first, then 4 tiles" in progress, progress
    assert 1 < len(tiled) <= 5, closely[-1]["output"]
    api = httpx.post(
        f"{server.url}/v1/analyze",
        data={"prompt": "segment cat", "tiles": "auto"},
        files={"images": ("big.jpg", photo, "image/jpeg")},
        timeout=300,
    )
    assert api.status_code == 200, api.text
    expected = [
        (d["label"], tuple(d["box_px"])) for d in api.json()["results"][0]["detections"]
    ]
    assert tiled == expected  # same looks, same merge, same order


async def test_a_phone_photo_keeps_its_tiled_objects_for_undo_export_redraw(
    server,
) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        await look_closely(client, True)
        first = await client.send(
            "segment cat", [("phone.jpg", ramp_jpeg((4032, 3024)))], timeout_s=300
        )
        tiled = rows(first[-1])
        await look_closely(client, False)
        plain = await client.send("segment cat", timeout_s=300)
        undone = await client.send("undo", timeout_s=300)
        exported = await client.send("export", timeout_s=300)
        files = {e["name"]: e for e in client.elements_for(exported[-1]["id"])}
        (coco_name,) = [n for n in files if n.endswith(".coco.json")]
        coco = json.loads(client.download(files[coco_name]))
        hidden = await client.send("remove 1", timeout_s=300)
    finally:
        await client.close()
    # 4032x3024: 3x3 tiles of auto; every box on the photo, in its pixels
    assert 1 < len(tiled) <= 10, first[-1]["output"]
    for label, (x1, y1, x2, y2) in tiled:
        assert label == "cat" and 0 <= x1 < x2 <= 4032 and 0 <= y1 < y2 <= 3024
    # the whole-photo cat (394, 295, 1969, 2067), via the 2016x1512 copy: +-2 px
    assert any(
        max(abs(a - b) for a, b in zip(box, (394, 295, 1969, 2067), strict=True)) <= 2
        for _, box in tiled
    ), tiled
    assert len(rows(plain[-1])) == 1  # setting off: one look again
    assert rows(undone[-1]) == tiled  # undo rebuilds the tiled answer as it was
    assert len(coco["annotations"]) == len(tiled)
    assert all(a["area"] > 0 for a in coco["annotations"])  # masks kept, not boxes
    assert rows(hidden[-1]) == tiled[1:]  # a redraw of the kept objects


async def test_a_region_is_tiled_and_its_objects_stay_inside_it(server) -> None:
    client = ChatClient(server.url)
    await client.connect()
    try:
        await look_closely(client, True)
        replies = await client.send(
            "region 0,0 to 2016,1512: segment cat",  # pixels of the original
            [("phone.jpg", ramp_jpeg((4032, 3024)))],
            timeout_s=300,
        )
        progress = client.step_outputs("looking closely")
    finally:
        await client.close()
    found = rows(replies[-1])
    assert "tile 4 of 4" in progress, progress  # the 2016x1512 quarter: 2x2
    assert 1 < len(found) <= 5, replies[-1]["output"]
    for _, (x1, y1, x2, y2) in found:  # on the photo, inside the top-left quarter
        assert 0 <= x1 < x2 <= 2016 and 0 <= y1 < y2 <= 1512
