"""A region request in a real Chromium: "draw a region", drag a rectangle on the
photo, and the last request runs on that part with results on the photo."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.support.browser import (
    ASSISTANT,
    attach,
    open_chat,
    send,
    table_rows,
    wait_for_answer,
)
from tests.support.chat_client import ServerProcess

pytestmark = pytest.mark.browser

PHOTO_WH = (400, 300)
CAT = "<loc0256><loc0256><loc0768><loc0768> cat"  # the middle half of what it sees


@pytest.fixture(scope="module")
def server(app_server) -> ServerProcess:
    return app_server(recording={"detect cat": CAT}, name="region-server")


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    page = open_chat(browser, server.url)
    try:
        yield page
    finally:
        page.context.close()


def test_drag_a_region_and_the_request_runs_there(page, tmp_path) -> None:
    photo = tmp_path / "room.png"
    Image.new("RGB", PHOTO_WH, (120, 160, 200)).save(photo)
    attach(page, photo)
    before = send(page, "detect the cat")
    whole = wait_for_answer(page, "detect cat", before)
    assert table_rows(whole)[0][1:6] == ["cat", "100", "75", "300", "225"]

    before = send(page, "draw a region")
    picker = page.locator("#region-select")
    picker.wait_for(timeout=60_000)
    page.locator(ASSISTANT).nth(before).wait_for()
    box = picker.bounding_box()
    # drag from the photo's (0, 0) to its centre: the top-left quarter
    page.mouse.move(box["x"] + 1, box["y"] + 1)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    before = page.locator(ASSISTANT).count()
    answer = wait_for_answer(page, "detect cat", before - 1, timeout_s=90)
    text = answer.inner_text()
    region = re.search(r"in the region (\d+),(\d+) to (\d+),(\d+)", text)
    assert region, text
    x1, y1, x2, y2 = (int(v) for v in region.groups())
    assert (x1, y1) == (0, 0) or max(x1, y1) <= 2, region.group(0)
    assert abs(x2 - 200) <= 4 and abs(y2 - 150) <= 4, region.group(0)
    # the model saw only the region: its "middle half" is the region's middle
    label, *coords = table_rows(answer)[0][1:6]
    expected = (x1 + (x2 - x1) // 4, y1 + (y2 - y1) // 4)
    assert label == "cat"
    assert (
        abs(int(coords[0]) - expected[0]) <= 1
        and abs(int(coords[1]) - expected[1]) <= 1
    )
    assert int(coords[2]) <= x2 and int(coords[3]) <= y2
