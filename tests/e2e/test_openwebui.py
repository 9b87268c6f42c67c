"""Open WebUI's exact requests over the real server (issue 24).

The first message is the one Open WebUI 0.12.4 sends for "detect the red
squares" with a photo attached (three parts: its ``<attached_files>`` text,
the typed text, the image), streamed; then the follow-up and title tasks it
sends after the answer, their ``<chat_history>`` holding the real answer.
Payloads: tests/fixtures/openwebui/ (written by Open WebUI's own code).
"""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import httpx
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

KEY = "sk-test-openwebui"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "openwebui"
RED_SQUARES = (
    "<loc0100><loc0050><loc0400><loc0250> red square ; "
    "<loc0100><loc0400><loc0400><loc0600> red square ; "
    "<loc0500><loc0050><loc0900><loc0250> red square"
)
# the three boxes in the 320x240 photo's pixels
ROWS = [
    re.compile(r"\| red square[^|]*\| 16 \| 23 \| 78 \| 94 \|"),
    re.compile(r"\| red square[^|]*\| 125 \| 23 \| 188 \| 94 \|"),
    re.compile(r"\| red square[^|]*\| 16 \| 117 \| 78 \| 211 \|"),
]
LINK = re.compile(r"!\[overlay\]\((http://[^)]+)\)")


def jpeg_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "white").save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def first_message() -> dict:
    body = fixture("first_message")
    body["messages"][0]["content"][2]["image_url"]["url"] = jpeg_uri()
    return body


def task_about(name: str, answer: str) -> dict:
    """The recorded task prompt, its chat history's answer replaced by ``answer``."""
    body = fixture(name)
    prompt = body["messages"][0]["content"]
    head, _, _ = prompt.partition("ASSISTANT: ")
    body["messages"][0]["content"] = f"{head}ASSISTANT: {answer}\n</chat_history>"
    return body


def streamed_text(response: httpx.Response) -> str:
    chunks = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)


@pytest.fixture(scope="module")
def server(app_server):
    recording = {"detect red square": RED_SQUARES}
    return app_server(  # the task prompts are longer than MAX_PROMPT_CHARS
        recording=recording, name="openwebui", API_KEY=KEY, MAX_PROMPT_CHARS="1000"
    )


@pytest.fixture(scope="module")
def http(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def first_answer(http) -> str:
    response = http.post("/v1/chat/completions", json=first_message())
    assert response.status_code == 200, response.text
    return streamed_text(response)


def test_the_first_message_runs_the_typed_request(first_answer, http) -> None:
    assert "`detect red square`" in first_answer, first_answer
    assert "*squares.jpg*" in first_answer  # the attached file's name
    for row in ROWS:
        assert row.search(first_answer), first_answer
    (link,) = LINK.findall(first_answer)
    overlay = http.get(link)
    assert overlay.status_code == 200
    assert Image.open(io.BytesIO(overlay.content)).size == (320, 240)


def test_follow_up_task_gets_refinements_of_the_answer(first_answer, http) -> None:
    body = task_about("task_follow_ups", first_answer)
    assert len(body["messages"][0]["content"]) > 1000  # MAX_PROMPT_CHARS
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    follow_ups = json.loads(content)["follow_ups"]
    assert follow_ups[:2] == ["now as masks", "only 1 and 3"], follow_ups


def test_title_and_tags_tasks(first_answer, http) -> None:
    title = http.post(
        "/v1/chat/completions", json=task_about("task_title", first_answer)
    )
    assert json.loads(title.json()["choices"][0]["message"]["content"]) == {
        "title": "Red square detection"
    }
    tags = http.post("/v1/chat/completions", json=task_about("task_tags", first_answer))
    assert (
        "Object Detection"
        in json.loads(tags.json()["choices"][0]["message"]["content"])["tags"]
    )
