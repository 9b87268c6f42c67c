"""A whole conversation over the real Chainlit server: uploads, refinements,
switching images, undo, on a replaying model (recorded PaliGemma answers, so
labels, boxes and mask areas are exact). Several photos in one message,
"image 1 and image 2" and redraws by object number run on a second replaying
server. The tiny model's chat path is covered by test_e2e_chat.py."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from core.export.formats import FORMATS
from core.geometry import box_to_pixels
from core.tokens import parse_objects
from tests.recorded import REPLAY_RECORDING
from tests.support.chat_client import ChatClient

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


SIZES = {"cat.png": (320, 240), "car.png": (200, 300)}
UPLOADS = {name: png_bytes(size, "orange") for name, size in SIZES.items()}
# The photo each FLOW turn runs on.
IMAGES = ["cat.png", "cat.png", "cat.png", "cat.png", "car.png", "cat.png"]


@pytest.fixture(scope="module")
def server(app_server):
    """Recorded answers: exact labels, boxes and masks."""
    return app_server(recording=REPLAY_RECORDING, name="conversation")


@pytest.fixture(scope="module")
def replay_server(app_server):
    return app_server(recording=REPLAY_RECORDING, name="server-multi")


def generating_inputs(client: ChatClient) -> list[str]:
    seen: dict[str, str] = {}
    for step in client.messages + client.steps:
        if step.get("name") == "generating":
            seen[step["id"]] = step.get("input", "")
    return list(seen.values())


def table(answer: str) -> list[list[str]]:
    """The box table's rows: [#, label, x1, y1, x2, y2, mask area]."""
    rows = [line.strip("| ").split(" | ") for line in answer.splitlines()]
    rows = [row for row in rows if len(row) == 7][1:]  # without the header
    return [[row[0].split()[-1], *row[1:]] for row in rows]  # "🟥 1" -> "1"


def expected_rows(prompt: str, size_wh: tuple[int, int]) -> list[list[str]]:
    """#, label and box of the recorded answer (the area is checked apart)."""
    objects = parse_objects(REPLAY_RECORDING[prompt])
    return [
        [str(i), o.label, *map(str, box_to_pixels(o.box, size_wh))]
        for i, o in enumerate(objects, start=1)
    ]


async def test_refine_switch_images_and_undo(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        for (text, uploads, prompt, labels), image in zip(FLOW, IMAGES, strict=True):
            files = [(name, UPLOADS[name]) for name in uploads]
            replies = await client.send(text, files)
            answer = replies[-1]["output"]
            assert generating_inputs(client)[-1] == prompt, (
                text,
                server.log()[-2000:],
            )
            assert f"`{prompt}`" in answer
            kinds = [e["type"] for e in client.elements_for(replies[-1]["id"])]
            assert kinds.count("image") == 1  # the overlay
            rows = table(answer)
            assert [row[1] for row in rows] == labels
            assert [row[:6] for row in rows] == expected_rows(prompt, SIZES[image])
            areas = [row[6] for row in rows]
            if prompt.startswith("segment"):  # a real mask for every object
                assert all(int(area.replace(",", "")) > 0 for area in areas), areas
            else:
                assert set(areas) == {"—"}, areas  # boxes only
            assert kinds.count("file") == 0  # built when a button is clicked
            buttons = [a["label"] for a in client.downloads_for(replies[-1]["id"])]
            assert buttons == [fmt.label for fmt in FORMATS]
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
        assert files == sorted(fmt.file_name("export-1") for fmt in FORMATS)
        assert len(generating_inputs(client)) == len(FLOW)  # exports never generate

        replies = await client.send("on image 3")
        assert "no image 3" in replies[-1]["output"].lower()
    finally:
        await client.close()


async def test_request_before_the_photo_runs_when_it_arrives(server):
    client = ChatClient(server.url)
    await client.connect()
    try:
        # Not a starter's exact text: those bring a sample photo (chat/samples.py).
        (reply,) = await client.send("cut out the cat")
        assert "Attach a photo first" in reply["output"]
        replies = await client.send("", [("cat.png", UPLOADS["cat.png"])])
        assert generating_inputs(client) == ["segment cat"]
        assert "`segment cat`" in replies[-1]["output"]
    finally:
        await client.close()


def table_rows(answer: str) -> list[tuple[str, str]]:
    """(swatch and number, label) of each box-table row of a reply."""
    rows = [line for line in answer.splitlines() if line.startswith("| ")]
    return [tuple(row.split(" | ")[:2]) for row in rows[1:]]


def results(replies: list[dict]) -> list[dict]:
    """The replies that carry a model result (they name the prompt in bold)."""
    return [r for r in replies if r["output"].startswith("**`")]


async def test_two_photos_in_one_message_and_one_request_per_image(replay_server):
    client = ChatClient(replay_server.url)
    await client.connect()
    try:
        photos = [(name, UPLOADS[name]) for name in ("cat.png", "car.png")]
        replies = await client.send("detect the cat", photos)
        assert generating_inputs(client) == ["detect cat", "detect cat"]
        answers = [r["output"] for r in results(replies)]
        assert ["cat.png" in answers[0], "car.png" in answers[1]] == [True, True]
        assert any("Image 2 of 2: *car.png*" in r["output"] for r in replies)
        for reply in results(replies):
            kinds = [e["type"] for e in client.elements_for(reply["id"])]
            assert kinds.count("image") == 1  # one overlay per photo

        replies = await client.send("also the dog")  # still both photos
        assert generating_inputs(client)[2:] == ["detect cat ; dog"] * 2
        assert len(results(replies)) == 2

        replies = await client.send("segment the cat in image 1 and the car in image 2")
        assert generating_inputs(client)[4:] == ["segment cat", "segment car"]
        first, second = (r["output"] for r in results(replies))
        assert "`segment cat`** on *cat.png*" in first
        assert "`segment car`** on *car.png*" in second
        assert table_rows(second) == [("| 🟥 1", "car")]

        # "undo" takes a whole message back, on every photo it ran on
        runs = len(generating_inputs(client))
        for prompt in ("detect cat ; dog", "detect cat"):
            replies = await client.send("undo")
            shown = [r["output"] for r in results(replies)]
            assert len(shown) == 2, [r["output"] for r in replies]
            assert f"`{prompt}`** on *cat.png*" in shown[0]
            assert f"`{prompt}`** on *car.png*" in shown[1]
        replies = await client.send("undo")
        said = [r["output"] for r in replies]
        assert any("Undone on *cat.png*: back to the plain photo" in t for t in said)
        assert any("Undone on *car.png*: back to the plain photo" in t for t in said)
        assert len(generating_inputs(client)) == runs  # undo never re-generates
    finally:
        await client.close()


async def test_objects_by_number_redraw_without_the_model(replay_server):
    client = ChatClient(replay_server.url)
    await client.connect()
    try:
        generated = replay_server.log().count("replayed ")
        replies = await client.send(
            "segment the cat and the dog", [("cat.png", UPLOADS["cat.png"])]
        )
        assert table_rows(replies[-1]["output"]) == [
            ("| 🟥 1", "cat"),
            ("| 🟩 2", "dog"),
        ]
        assert replay_server.log().count("replayed ") == generated + 1
        runs = generating_inputs(client)
        assert runs == ["segment cat ; dog"]

        redraws = [
            ("only 2", [("| 🟩 2", "dog")]),
            ("hide the boxes", [("| 🟩 2", "dog")]),
            ("show all", [("| 🟥 1", "cat"), ("| 🟩 2", "dog")]),
            ("remove 1", [("| 🟩 2", "dog")]),
            ("undo", [("| 🟥 1", "cat"), ("| 🟩 2", "dog")]),  # back to "show all"
        ]
        for text, rows in redraws:
            replies = await client.send(text)
            answer = replies[-1]["output"]
            assert table_rows(answer) == rows, (text, answer)
            overlays = [e for e in client.elements_for(replies[-1]["id"])]
            assert [e["type"] for e in overlays].count("image") == 1, text
        assert generating_inputs(client) == runs  # no "generating" step since
        assert replay_server.log().count("replayed ") == generated + 1  # no generate

        (reply,) = await client.send("only 1 and 3")
        assert "There is no object 3" in reply["output"]
    finally:
        await client.close()
