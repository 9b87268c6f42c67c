"""The chat flow without a server: each command, refinement, undo and a failing
photo, driven through chat.replies.handle_message on a FakeModel.

Each test checks what the user sees (the assistant messages) and what the
model was asked (FakeModel.calls): a chat command never reaches the model.
"""

from __future__ import annotations

from collections.abc import Iterator

import chainlit as cl
import pytest

from chat.commands import COMMANDS
from chat.options import DEFAULT_OPTIONS, current_options
from core.intent import HELP_MESSAGE
from core.types import Action
from tests.support.chat_session import ChatSession, open_chat
from tests.support.fakes import FakeModel

CAT = "<loc0100><loc0100><loc0700><loc0500> cat"
DOG = "<loc0200><loc0550><loc0900><loc0950> dog"
SEGS = "".join(f"<seg{v:03d}>" for v in range(16))
PHOTO = ("cat.png", (640, 480))


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def chats(tmp_path) -> Iterator[list[ChatSession]]:
    """Sessions opened by a test (in its own task: Chainlit's context lives
    there); their queues are shut down after it."""
    opened: list[ChatSession] = []
    yield opened
    for session in opened:
        session.services.queue.shutdown()


@pytest.fixture
def chat(tmp_path, model, chats):
    """Opens the test's chat session: ``chat = await chat()``."""

    async def start(fake: FakeModel | None = None) -> ChatSession:
        session = open_chat(tmp_path, fake or model)
        chats.append(session)
        return session

    return start


def test_every_action_has_one_command() -> None:
    assert set(COMMANDS) == set(Action)


async def test_refinement_adds_a_target_then_switches_to_masks(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT).enqueue(f"{CAT} ; {DOG}")
    model.enqueue(f"{CAT.replace(' cat', '')} {SEGS} cat ; {DOG[:-4]} {SEGS} dog")
    assert await chat.say("", PHOTO) == ["Got cat.png. What should I look for?"]

    (first,) = await chat.say("detect cat")
    assert "`detect cat`" in first and "| cat |" in first and "dog" not in first
    (second,) = await chat.say("also the dog")
    assert "`detect cat ; dog`" in second and "| cat |" in second
    assert "| dog |" in second
    (third,) = await chat.say("now as masks")
    assert "`segment cat ; dog`" in third
    assert "| — |" not in third  # every object has its mask area

    assert chat.prompts() == ["detect cat", "detect cat ; dog", "segment cat ; dog"]
    assert [c["image_size"] for c in model.calls] == [(640, 480)] * 3
    assert "cat-overlay.jpg" in chat.element_names()


async def test_undo_shows_the_previous_answer_without_the_model(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT).enqueue(f"{CAT} ; {DOG}")
    await chat.say("", PHOTO)
    await chat.say("detect cat")
    await chat.say("also the dog")

    undone, answer = await chat.say("undo")
    assert undone == "Undone: this is the previous answer again."
    assert "`detect cat`" in answer and "| dog |" not in answer
    (plain,) = await chat.say("undo")
    assert plain == "Undone: back to the plain photo. What should I look for?"
    (nothing,) = await chat.say("undo")
    assert "undo" in nothing.lower()  # nothing left: told so, not a crash
    assert chat.prompts() == ["detect cat", "detect cat ; dog"]


async def test_export_sends_the_current_result_files(chat, model) -> None:
    chat = await chat()
    model.enqueue(f"{CAT.replace(' cat', '')} {SEGS} cat")
    await chat.say("", PHOTO)
    (empty,) = await chat.say("export")
    assert empty.startswith("Nothing to export yet")
    await chat.say("segment cat")
    before = len(chat.element_names())

    (exported,) = await chat.say("export")
    assert exported.startswith("Exports of 1 image(s) (*cat.png*), 1 object(s)")
    assert len(chat.element_names()) > before  # the files came with it
    assert chat.prompts() == ["segment cat"]


async def test_redraw_hides_objects_and_layers_without_the_model(chat, model) -> None:
    chat = await chat()
    model.enqueue(f"{CAT} ; {DOG}")
    await chat.say("", PHOTO)
    (both,) = await chat.say("detect cat ; dog")
    assert "| cat |" in both and "| dog |" in both

    (only,) = await chat.say("only 1")
    assert "| cat |" in only and "| dog |" not in only
    (missing,) = await chat.say("only 3")
    assert "There is no object 3: the last result has 2" in missing
    assert current_options().show_boxes
    await chat.say("hide the boxes")
    assert not current_options().show_boxes  # the one options accessor follows
    assert chat.emitter.chat_settings  # and so does the settings panel
    assert chat.prompts() == ["detect cat ; dog"]


async def test_select_image_and_the_request_runs_there(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT)
    await chat.say("", ("first.png", (640, 480)))
    await chat.say("", ("second.png", (320, 240)))

    (chosen,) = await chat.say("use image 1")
    assert chosen == "Now working on image 1: *first.png*."
    (answer,) = await chat.say("detect cat")
    assert "*first.png* (640x480)" in answer
    (unknown,) = await chat.say("use image 5")
    assert "5" in unknown  # named, not a crash
    assert [c["image_size"] for c in model.calls] == [(640, 480)]


async def test_region_pick_then_the_request_runs_on_the_region(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT).enqueue(CAT)
    await chat.say("", PHOTO)
    await chat.say("detect cat")

    (hint,) = await chat.say("draw a region")
    assert hint == "Drag a rectangle on *cat.png*: `detect cat` runs there."
    assert "RegionSelect" in chat.element_names()
    (answer,) = await chat.say("region 0,0 to 320,240")
    assert "`detect cat`" in answer
    assert chat.prompts() == ["detect cat", "detect cat"]
    assert model.calls[1]["image_size"] == (320, 240)  # only the region


async def test_help_and_clarify_answer_without_a_photo(chat, model) -> None:
    chat = await chat()
    assert await chat.say("help") == [HELP_MESSAGE]
    (clarify,) = await chat.say("hmm")
    assert clarify.startswith("Tell me what to look for")
    assert model.calls == []


async def test_a_request_before_the_photo_waits_for_it(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT)
    (ask,) = await chat.say("detect cat")
    assert ask.startswith("Attach a photo first") and "`detect cat`" in ask
    (undo,) = await chat.say("undo")  # a command needs a photo too
    assert undo.startswith("Attach a photo first")
    assert model.calls == []

    (answer,) = await chat.say("", PHOTO)
    assert "`detect cat`" in answer
    assert chat.prompts() == ["detect cat"]


async def test_a_session_without_options_runs_with_the_defaults(chat, model) -> None:
    chat = await chat()
    model.enqueue(CAT)
    await chat.say("", PHOTO)
    cl.user_session.set("options", None)  # e.g. a message before on_chat_start ran
    assert current_options() == DEFAULT_OPTIONS

    (answer,) = await chat.say("detect cat")
    assert "`detect cat`" in answer
    assert model.calls[0]["do_sample"] is False  # the default decoding, greedy


class FailsOnSize(FakeModel):
    """Raises what a backend raises (e.g. out of memory) for one photo size."""

    def __init__(self, size_wh: tuple[int, int]) -> None:
        super().__init__()
        self.size_wh = size_wh

    def generate(self, image, prompt, **decoding):
        if image.size == self.size_wh:
            self.calls.append({"image_size": image.size, "prompt": prompt})
            raise RuntimeError("CUDA out of memory")
        return super().generate(image, prompt, **decoding)


async def test_a_failing_photo_among_several_is_named(chat) -> None:
    chat = await chat(FailsOnSize((320, 240)).enqueue(CAT).enqueue(CAT))
    photos = [("a.png", (640, 480)), ("b.png", (320, 240)), ("c.png", (480, 360))]
    await chat.say("", *photos)
    replies = await chat.say("detect cat")

    assert chat.prompts() == ["detect cat"] * 3  # every photo was tried
    assert replies[0] == "Image 1 of 3: *a.png*"
    assert "*a.png* (640x480)" in replies[1]
    assert replies[2] == "Image 2 of 3: *b.png*"
    assert replies[3].startswith("⚠️") and "*b.png*" in replies[3]
    assert replies[4] == "Image 3 of 3: *c.png*"
    assert "*c.png* (480x360)" in replies[5]
    assert "CUDA" not in " ".join(replies)  # the internal error stays in the log
