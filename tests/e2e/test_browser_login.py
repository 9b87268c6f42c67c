"""Login, history sidebar and resume in a real Chromium.

One server with AUTH_USERS (history on, the default SQLite file in DATA_DIR)
answering from a recording; screenshots go to test-output/browser/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Page

from core.persist.auth import hash_password
from tests.support.browser import (
    ASSISTANT,
    INLINE_IMAGE,
    SESSION_READY,
    attach,
    send,
    table_rows,
    wait_for_answer,
)
from tests.support.chat_client import ROOT, ServerProcess

pytestmark = pytest.mark.browser

PASSWORD = "tr0ub4dor&3"
IMAGE_WH = (320, 240)
SEGS = (
    "<seg092><seg004><seg044><seg092><seg120><seg061><seg029><seg120><seg090>"
    "<seg023><seg021><seg090><seg015><seg041><seg044><seg073>"
)
CAT = f"<loc0100><loc0100><loc0800><loc0600> {SEGS} cat"
DOG = f"<loc0200><loc0620><loc0900><loc1000> {SEGS} dog"
RECORDING = {"segment cat": CAT, "segment cat ; dog": f"{CAT} ; {DOG}"}
SCREENSHOT_DIR = ROOT / "test-output" / "browser"
THREAD_URL = re.compile(r"/thread/([0-9a-f-]{36})$")


@pytest.fixture(scope="module")
def server(app_server) -> ServerProcess:
    users = f"alice:{hash_password(PASSWORD)}"
    return app_server(recording=RECORDING, name="browser-login", AUTH_USERS=users)


@pytest.fixture
def page(browser) -> Iterator[Page]:
    page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def photo(tmp_path) -> Path:
    image = Image.new("RGB", IMAGE_WH, (170, 170, 170))
    ImageDraw.Draw(image).rectangle((40, 40, 180, 180), fill=(230, 140, 40))
    path = tmp_path / "pets.png"
    image.save(path)
    return path


def log_in(page: Page, url: str, password: str) -> None:
    page.goto(url)
    page.wait_for_url("**/login")
    page.locator("form input:not([type=password])").first.fill("alice")
    page.locator("form input[type=password]").fill(password)
    page.locator("form button[type=submit]").click()


def test_wrong_password_stays_on_the_login_page(page, server):
    log_in(page, server.url, "not the password")
    page.get_by_text(re.compile("sign ?in failed|credentials", re.I)).first.wait_for()
    assert page.url.endswith("/login")
    assert page.locator(SESSION_READY).count() == 0


def test_login_history_sidebar_and_resume(page, server, photo, tmp_path):
    log_in(page, server.url, PASSWORD)
    page.locator(SESSION_READY).wait_for(timeout=30_000)
    attach(page, photo)
    before = send(page, "segment cat")
    wait_for_answer(page, "segment cat", before)
    page.wait_for_url(THREAD_URL, timeout=15_000)  # the chat got its own address
    thread_id = THREAD_URL.search(page.url).group(1)
    thread_row = page.locator(f'[id="thread-{thread_id}"]')
    thread_row.wait_for()
    assert "segment cat" in thread_row.inner_text()

    page.reload()  # everything must come back, photo and overlay included
    answer = _resumed_answer(page, "segment cat")
    _screenshot(page, tmp_path, "5-resumed-after-reload")
    assert table_rows(answer)[0][1] == "cat"
    assert _image_width(answer.locator(INLINE_IMAGE).first) == IMAGE_WH[0]
    user_photo = page.locator(f'img[alt="{photo.name}"]').first
    assert _image_width(user_photo) == IMAGE_WH[0]  # the upload itself, too

    before = page.locator(ASSISTANT).count()
    page.locator("textarea#chat-input").fill("also the dog")
    page.locator("#chat-submit").click()
    refined = wait_for_answer(page, "segment cat ; dog", before)
    assert [row[1] for row in table_rows(refined)] == ["cat", "dog"]

    page.locator("#new-chat-button").click()
    confirm = page.get_by_role("button", name=re.compile("confirm", re.I))
    if confirm.count():
        confirm.click()
    page.wait_for_url(lambda url: not THREAD_URL.search(url))
    assert page.locator(ASSISTANT).filter(has_text="segment cat").count() == 0
    thread_row.click()  # back from the sidebar
    page.wait_for_url(f"**/thread/{thread_id}")
    _resumed_answer(page, "segment cat ; dog")
    _screenshot(page, tmp_path, "6-reopened-from-sidebar")
    assert page.locator(ASSISTANT).filter(has=page.locator(INLINE_IMAGE)).count() == 2

    folder = server.data_dir / "threads" / thread_id
    assert (folder / "state.json").is_file()
    thread_row.hover()
    thread_row.locator("#thread-options").click()
    page.get_by_role("menuitem", name=re.compile("delete", re.I)).click()
    with page.expect_response(
        lambda r: r.url.endswith("/project/thread") and r.request.method == "DELETE"
    ) as deleted:
        page.get_by_role("button", name=re.compile("confirm|delete", re.I)).last.click()
    assert deleted.value.ok, deleted.value.text()
    thread_row.wait_for(state="detached")
    assert not folder.exists()  # photos, overlays and state went with the thread


def _resumed_answer(page: Page, prompt: str):
    """The last assistant answer showing ``prompt``, with its overlay loaded."""
    code = page.locator("code").filter(has_text=re.compile(rf"^\s*{prompt}\s*$"))
    answer = page.locator(ASSISTANT).filter(has=code).last
    answer.wait_for(timeout=30_000)
    answer.locator(INLINE_IMAGE).first.wait_for(timeout=30_000)
    return answer


def _image_width(image) -> int:
    image.scroll_into_view_if_needed()
    image.page.wait_for_function(
        "el => el.complete && el.naturalWidth > 0", arg=image.element_handle()
    )
    return image.evaluate("el => el.naturalWidth")


def _screenshot(page: Page, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}-page.png"
    page.screenshot(path=str(shot), animations="disabled")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / shot.name)
