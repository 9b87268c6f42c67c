"""Follow-up suggestions in a real Chromium (issue 24): the buttons under a
grounded answer, and one click showing the phrase as the user's message and
answering it on the same photo, without typing or re-uploading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.recorded import REPLAY_RECORDING
from tests.support.browser import ASSISTANT, attach, open_chat, send, wait_for_answer
from tests.support.chat_client import ServerProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(app_server) -> ServerProcess:
    return app_server(recording=REPLAY_RECORDING, name="browser-suggestions")


@pytest.fixture
def page(browser, server) -> Iterator[Page]:
    page = open_chat(browser, server.url)
    try:
        yield page
    finally:
        page.context.close()


def test_clicking_a_suggestion_runs_it(page: Page, tmp_path: Path) -> None:
    photo = tmp_path / "cat.png"
    Image.new("RGB", (320, 240), "orange").save(photo)
    attach(page, photo)
    before = send(page, "segment the cat")
    answer = wait_for_answer(page, "segment cat", before)
    button = answer.get_by_role("button", name="now as boxes")
    assert button.count() == 1
    assert answer.get_by_role("button", name="zoom into the top left").count() == 1

    before = page.locator(ASSISTANT).count()
    button.click()
    second = wait_for_answer(page, "detect cat", before)
    assert "cat.png" in second.inner_text()
    user = page.locator('.step[data-step-type="user_message"]').last
    assert "now as boxes" in user.inner_text()
    page.screenshot(path=str(tmp_path / "suggestion-clicked.png"))
