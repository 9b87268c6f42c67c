"""Drive the Chainlit 2.12 web page in Debian's Chromium through Playwright.

Selectors were read off the live page (Chainlit 2.12.x, see tests/e2e/test_browser.py):
the composer is ``textarea#chat-input`` with ``#chat-submit`` (replaced by
``#stop-button`` while a task runs), uploads go through the hidden
``input#upload-button-input`` (the paperclip is ``#upload-button-loading`` until
the socket session exists) and show up in ``#attachments``; every message or
step is a ``.step[data-step-type=...]`` block; a step's header is a button whose
id is ``step-<step name>`` (spaces kept, so use ``[id="step-decoding masks"]``),
and it controls the collapsible region named by ``aria-controls``.
``#chat-settings-open-modal`` appears once ``on_chat_start`` has sent the
settings, which is when uploads stop answering 404 "Session not found".
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, Playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

logger = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ASSISTANT = '.step[data-step-type="assistant_message"]'
SESSION_READY = "#chat-settings-open-modal"
COMPOSER = "textarea#chat-input"
SUBMIT = "#chat-submit"
STOP = "#stop-button"
UPLOAD_INPUT = "input#upload-button-input"
INLINE_IMAGE = "img.inline-image"


def chromium_path() -> str:
    """The system Chromium (Debian package ``chromium``); Playwright's own
    browser downloads are blocked here."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError(
            "The browser tests need Chromium, found none on PATH: run "
            "`apt-get install chromium` (scripts/run_tests.sh does it as root)."
        )
    return path


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Chromium with a fresh temporary profile and no background traffic."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
    )


def open_chat(browser: Browser, url: str, timeout_s: float = 30) -> Page:
    """A new tab on the chat, returned once the socket session has started."""
    page = browser.new_context(viewport={"width": 1280, "height": 1100}).new_page()
    page.goto(url)
    page.locator(SESSION_READY).wait_for(timeout=timeout_s * 1000)
    return page


def attach(page: Page, path: Path, timeout_s: float = 30) -> None:
    """Upload a file as the paperclip does; returns once the server stored it."""
    with page.expect_response(
        lambda r: "/project/file" in r.url and r.request.method == "POST",
        timeout=timeout_s * 1000,
    ) as response:
        page.set_input_files(UPLOAD_INPUT, str(path))
    if not response.value.ok:
        raise AssertionError(
            f"upload of {path.name} answered {response.value.status}: "
            f"{response.value.text()[:300]}"
        )
    page.locator(f'#attachments img[alt="{path.name}"]').wait_for(
        timeout=timeout_s * 1000
    )


def send(page: Page, text: str) -> int:
    """Type ``text`` into the composer and press send.

    Returns how many assistant messages were on the page before, for
    ``wait_for_answer``.
    """
    before = page.locator(ASSISTANT).count()
    page.locator(COMPOSER).fill(text)
    page.locator(SUBMIT).click()
    return before


def answer_with_prompt(page: Page, prompt: str) -> Locator:
    """Assistant messages whose inline code is exactly ``prompt``."""
    exact = re.compile(rf"^\s*{re.escape(prompt)}\s*$")
    return page.locator(ASSISTANT).filter(
        has=page.locator("code").filter(has_text=exact)
    )


def wait_for_answer(
    page: Page, prompt: str, before: int, timeout_s: float = 90
) -> Locator:
    """The answer about ``prompt`` to the message sent when ``before`` assistant
    messages were shown, once the chat's task has ended.

    Fails fast (AssertionError quoting the new assistant messages) when the task
    ends with something else, e.g. a "⚠️" error, and on timeout.
    """
    fresh = page.locator(ASSISTANT).nth(before)
    deadline = time.monotonic() + timeout_s
    try:
        fresh.wait_for(timeout=timeout_s * 1000)
        remaining_ms = max(1.0, deadline - time.monotonic()) * 1000
        page.locator(STOP).wait_for(state="detached", timeout=remaining_ms)
    except PlaywrightTimeout as exc:
        raise AssertionError(
            f"no reply to {prompt!r} within {timeout_s} s; assistant messages: "
            f"{page.locator(ASSISTANT).all_inner_texts()[before:]}"
        ) from exc
    answer = answer_with_prompt(page, prompt)
    if answer.count() == 0:
        raise AssertionError(
            f"the reply does not show the prompt {prompt!r}; assistant messages: "
            f"{page.locator(ASSISTANT).all_inner_texts()[before:]}"
        )
    return answer.last


def table_rows(message: Locator) -> list[list[str]]:
    """The body cells of the (first) table in ``message``, as stripped text."""
    rows = message.locator("table tbody tr")
    return [
        [cell.strip() for cell in rows.nth(i).locator("td").all_inner_texts()]
        for i in range(rows.count())
    ]


def expand_step(page: Page, name: str) -> Locator:
    """Open the last step called ``name``; returns its content region."""
    header = page.locator(f'[id="step-{name}"]').last
    if header.get_attribute("aria-expanded") != "true":
        header.click()
    region = page.locator(f'[id="{header.get_attribute("aria-controls")}"]')
    region.wait_for(state="visible")
    return region


def read_step(page: Page, name: str) -> tuple[str, str]:
    """(input, output) text of the last step called ``name``, as shown when open.

    Chainlit renders the input as a code block, and the output too when the
    step has a ``language`` (the "generating" step: raw model text, exact and
    inert; see core.security.markdown.code_block_safe).
    """
    region = expand_step(page, name)
    blocks = region.locator("pre code")
    blocks.nth(1).wait_for()  # the output's block renders after the input's
    shown_input = blocks.first.inner_text().strip()
    shown_output = blocks.nth(1).inner_text().strip()
    return shown_input, shown_output
