"""The chat in a real Chromium: upload, ask, see the overlay and box table, refine.

One Chainlit server (a replay model answering recorded PaliGemma text, the
synthetic VAE for masks) and one headless Chromium for the module. Screenshots
land in the test's tmp_path and in test-output/browser/ at the repository root.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page, expect
from pycocotools.coco import COCO

from core.export.formats import FORMATS, get_format
from core.geometry import box_to_pixels
from core.intent.parse import parse_intent
from core.render import swatch_for
from core.tokens import parse_objects
from tests.support.browser import (
    ASSISTANT,
    INLINE_IMAGE,
    attach,
    open_chat,
    read_step,
    send,
    table_rows,
    wait_for_answer,
)
from tests.support.chat_client import ROOT, ServerProcess

pytestmark = pytest.mark.browser

IMAGE_WH = (320, 240)
SCREENSHOT_DIR = ROOT / "test-output" / "browser"
CAT = (  # y1 x1 y2 x2 bins, 16 seg codes, label
    "<loc0100><loc0100><loc0800><loc0600> <seg092><seg004><seg044><seg092><seg120>"
    "<seg061><seg029><seg120><seg090><seg023><seg021><seg090><seg015><seg041>"
    "<seg044><seg073> cat"
)
DOG = (
    "<loc0200><loc0620><loc0900><loc1000> <seg092><seg004><seg089><seg092><seg120>"
    "<seg048><seg054><seg038><seg119><seg029><seg021><seg090><seg095><seg041>"
    "<seg044><seg073> dog"
)
FIRST_TEXT, REFINE_TEXT = "segment cat", "also the dog"
STEPS = ("reading image", "generating", "decoding masks")
STEP_GENERATING = '.step[data-step-type="llm"]'


@pytest.fixture(scope="module")
def prompts() -> tuple[str, str]:
    """The exact model prompts the chat sends for the two turns."""
    first = parse_intent(FIRST_TEXT)
    return first.prompt, parse_intent(REFINE_TEXT, first).prompt


@pytest.fixture(scope="module")
def recording(prompts) -> dict[str, str]:
    """Recorded PaliGemma answers: the cat, then the cat and the dog."""
    first, refined = prompts
    return {first: CAT, refined: f"{CAT} ; {DOG}"}


@pytest.fixture(scope="module")
def server(app_server, recording) -> ServerProcess:
    return app_server(recording=recording, name="browser-server")


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    page = open_chat(browser, server.url)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 320x240 PNG: grey ground, an orange 'cat' block left, a brown 'dog' right."""
    image = Image.new("RGB", IMAGE_WH, (170, 170, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 180, 180), fill=(230, 140, 40))
    draw.rectangle((200, 60, 300, 220), fill=(110, 70, 30))
    path = tmp_path / "pets.png"
    image.save(path)
    return path


def test_segment_then_refine_in_a_real_browser(page, server, prompts, photo, tmp_path):
    first, refined = prompts
    attach(page, photo)
    before = send(page, FIRST_TEXT)
    answer = wait_for_answer(page, first, before)
    _screenshot(page, answer, tmp_path, "1-segment-cat")

    assert "pets.png" in answer.inner_text()
    assert table_rows(answer) == _expected_rows(CAT, table_rows(answer))
    overlay = answer.locator(INLINE_IMAGE)
    assert overlay.count() == 1
    _assert_overlay(page, overlay.first, photo, parse_objects(CAT))
    assert read_step(page, "generating") == (first, CAT)  # prompt, raw model text

    before = send(page, REFINE_TEXT)
    second = wait_for_answer(page, refined, before)
    _screenshot(page, second, tmp_path, "2-also-the-dog")

    assert "cat" in refined and "dog" in refined, refined  # kept cat, added dog
    rows = table_rows(second)
    assert [row[1] for row in rows] == ["cat", "dog"]
    assert rows == _expected_rows(f"{CAT} ; {DOG}", rows)
    assert second.locator(INLINE_IMAGE).count() == 1
    _assert_overlay(
        page, second.locator(INLINE_IMAGE).first, photo, parse_objects(f"{CAT} ; {DOG}")
    )
    assert read_step(page, "generating") == (refined, f"{CAT} ; {DOG}")
    _screenshot(page, page.locator(STEP_GENERATING).last, tmp_path, "3-generating-open")
    for step in STEPS:  # one of each per turn
        assert page.locator(f'[id="step-{step}"]').count() == 2, step
    assert page.locator(ASSISTANT).count() == 2  # no stray errors or help texts


def test_a_download_button_builds_its_file_in_a_real_browser(
    page, prompts, photo, tmp_path
):
    """The answer shows one button per export format and no file; a click
    builds the file and attaches it; the browser downloads a COCO document."""
    first, _ = prompts
    attach(page, photo)
    answer = wait_for_answer(page, first, send(page, FIRST_TEXT))
    for fmt in FORMATS:
        expect(answer.get_by_role("button", name=fmt.label)).to_be_visible()
    link = answer.get_by_role("link", name=re.compile(r"\.coco\.json"))
    assert link.count() == 0  # nothing built before the click
    answer.get_by_role("button", name=get_format("coco").label).click()
    expect(link).to_be_visible(timeout=30_000)
    _screenshot(page, answer, tmp_path, "4-download-clicked")
    with page.expect_download() as download:
        link.click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "pets.coco.json"
    coco = COCO(str(path))
    (annotation,) = coco.loadAnns(coco.getAnnIds())
    assert coco.annToMask(annotation).sum() == annotation["area"] > 0


def test_text_before_any_photo_asks_for_one(page, tmp_path):
    send(page, FIRST_TEXT)
    reply = page.locator(ASSISTANT).filter(has_text="Attach a photo").first
    reply.wait_for(timeout=30_000)
    _screenshot(page, reply, tmp_path, "4-no-photo")
    assert page.locator(INLINE_IMAGE).count() == 0


def _expected_rows(raw_text: str, shown: list[list[str]]) -> list[list[str]]:
    """Rows the box table must show for ``raw_text`` on the photo.

    The mask-area column is taken from ``shown`` after checking it is an integer
    (its value depends on the synthetic VAE, not on the table code).
    """
    rows = []
    for index, obj in enumerate(parse_objects(raw_text)):
        area = shown[index][-1] if index < len(shown) else "?"
        assert area.isdigit(), f"mask area must be a pixel count, got {area!r}"
        box = box_to_pixels(obj.box, IMAGE_WH)
        number = f"{swatch_for(index)} {index + 1}"  # the overlay colour's square
        rows.append([number, obj.label, *map(str, box), area])
    return rows


def _assert_overlay(page: Page, image, photo: Path, objects) -> None:
    """The overlay is shown, has the photo's size, and is drawn on inside boxes."""
    assert image.evaluate("el => el.complete && el.naturalWidth") == IMAGE_WH[0]
    response = page.request.get(image.get_attribute("src"))
    assert response.ok, response.status
    overlay = np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))
    original = np.asarray(Image.open(photo).convert("RGB"))
    assert overlay.shape == original.shape
    changed = np.any(overlay != original, axis=-1)
    for obj in objects:
        x1, y1, x2, y2 = box_to_pixels(obj.box, IMAGE_WH)
        assert changed[y1:y2, x1:x2].mean() > 0.01, f"nothing drawn for {obj.label}"
    assert not changed[-5:, :30].any()  # a corner no box touches is untouched


def _screenshot(page: Page, message, tmp_path: Path, name: str) -> None:
    """Page and message screenshots, kept in tmp_path and test-output/browser/."""
    message.scroll_into_view_if_needed()
    page_shot = tmp_path / f"{name}-page.png"
    message_shot = tmp_path / f"{name}-message.png"
    page.screenshot(path=str(page_shot), animations="disabled")
    message.screenshot(path=str(message_shot), animations="disabled")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for shot in (page_shot, message_shot):
        shutil.copy(shot, SCREENSHOT_DIR / shot.name)
