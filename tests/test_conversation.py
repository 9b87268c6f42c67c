"""Conversation: image order, names, references, errors, history and undo."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import numpy as np
import pytest

from core.conversation import Conversation, ImageRecord, ResultSummary
from core.errors import UserInputError
from core.intent.parse import parse_intent
from core.types import AnalysisResult, Detection, Intent


@pytest.fixture
def chat() -> Conversation:
    conversation = Conversation()
    conversation.add_image("cat.jpg", "/tmp/u/1.jpg", (640, 480))
    conversation.add_image("car.png", "/tmp/u/2.png", (800, 600))
    return conversation


def _summary(text: str) -> ResultSummary:
    return ResultSummary(raw_text=text, labels=(text,))


def test_add_image_orders_and_activates() -> None:
    chat = Conversation()
    assert not chat.has_images
    assert chat.active_image is None
    first = chat.add_image("cat.jpg", "/tmp/a.jpg", (640, 480))
    second = chat.add_image("  ", "/tmp/b.png", (10, 20))
    assert chat.has_images
    assert [r.order for r in chat.images] == [1, 2]
    assert first.id != second.id
    assert second.name == "image-2"  # blank names get a readable one
    assert chat.active_image == second  # the newest upload is active
    assert first == ImageRecord("img-1", "cat.jpg", "/tmp/a.jpg", (640, 480), 1)


@pytest.mark.parametrize(
    ("size_wh", "expectation"),
    [
        ((640, 480), does_not_raise()),  # normal
        ((1, 1), does_not_raise()),  # smallest
        ((0, 480), pytest.raises(ValueError, match="size_wh must be positive")),  # 0
        ((640, -1), pytest.raises(ValueError, match="size_wh must be positive")),  # <0
    ],
)
def test_add_image_checks_size(size_wh: tuple[int, int], expectation) -> None:
    with expectation:
        Conversation().add_image("a.png", "/tmp/a.png", size_wh)


@pytest.mark.parametrize(
    ("image_ref", "expected_name"),
    [
        (None, "car.png"),  # active = newest upload
        ("", "car.png"),  # empty = active
        ("1", "cat.jpg"),  # 1-based order
        ("2", "car.png"),  # second
        ("last", "car.png"),  # last upload
        ("cat.jpg", "cat.jpg"),  # exact name
        ("CAT.JPG", "cat.jpg"),  # case-insensitive
        ("car", "car.png"),  # name without extension
    ],
)
def test_resolve_single(chat: Conversation, image_ref, expected_name: str) -> None:
    record = chat.resolve(image_ref)
    assert isinstance(record, ImageRecord)
    assert record.name == expected_name


def test_resolve_all_lists_in_order(chat: Conversation) -> None:
    records = chat.resolve("all")
    assert isinstance(records, list)
    assert [r.name for r in records] == ["cat.jpg", "car.png"]


@pytest.mark.parametrize(
    ("image_ref", "message"),
    [
        (
            "3",
            "There is no image 3; this chat has 2 images: "
            "1. cat.jpg, 2. car.png (active).",
        ),  # out of range
        ("0", "There is no image 0;"),  # numbers start at 1
        (
            "dog.jpg",
            "There is no image named “dog.jpg”; this chat has 2 images",
        ),  # name
    ],
)
def test_resolve_errors_list_the_images(
    chat: Conversation, image_ref: str, message: str
) -> None:
    with pytest.raises(UserInputError) as info:
        chat.resolve(image_ref)
    assert info.value.message.startswith(message)
    assert info.value.http_status == 400


def test_resolve_without_images_says_to_upload() -> None:
    with pytest.raises(UserInputError, match="drop a photo first"):
        Conversation().resolve(None)


def test_duplicate_names_resolve_to_newest(chat: Conversation) -> None:
    newer = chat.add_image("cat.jpg", "/tmp/u/3.jpg", (100, 100))
    assert chat.resolve("cat.jpg") == newer
    assert chat.resolve("1").path == "/tmp/u/1.jpg"  # numbers stay unambiguous


def test_select_changes_active_and_refuses_all(chat: Conversation) -> None:
    assert chat.select("1").name == "cat.jpg"
    assert chat.active_image is not None and chat.active_image.name == "cat.jpg"
    assert chat.resolve(None).name == "cat.jpg"
    assert "1. cat.jpg (active)" in chat.describe_images()
    with pytest.raises(UserInputError, match="Pick one image"):
        chat.select("all")


def test_remove_renumbers_and_returns_path(chat: Conversation) -> None:
    cat = chat.resolve("1")
    chat.record(cat.id, parse_intent("detect cat"), _summary("cat"))
    removed = chat.remove_image("1")
    assert removed.path == "/tmp/u/1.jpg"
    assert [(r.order, r.name) for r in chat.images] == [(1, "car.png")]
    assert chat.history == ()  # its turns went with it
    assert chat.resolve("1").name == "car.png"


def test_remove_active_falls_back_to_newest(chat: Conversation) -> None:
    chat.remove_image(None)  # the active one: car.png
    assert chat.active_image is not None and chat.active_image.name == "cat.jpg"
    chat.remove_image(None)
    assert chat.active_image is None and not chat.has_images


def test_prune_keeps_active_and_newest(chat: Conversation) -> None:
    chat.add_image("dog.webp", "/tmp/u/3.webp", (10, 10))
    chat.select("1")
    removed = chat.prune(2)
    assert [r.name for r in removed] == ["car.png"]  # oldest that is not active
    assert [r.name for r in chat.images] == ["cat.jpg", "dog.webp"]
    with pytest.raises(ValueError, match="max_images must be >= 1"):
        chat.prune(0)


def test_clear_returns_every_path(chat: Conversation) -> None:
    chat.record(chat.resolve(None).id, parse_intent("ocr"), _summary("STOP"))
    assert chat.clear() == ["/tmp/u/1.jpg", "/tmp/u/2.png"]
    assert not chat.has_images and chat.history == () and chat.last_intent() is None


def test_record_and_last_intent_per_image(chat: Conversation) -> None:
    cat, car = chat.resolve("1"), chat.resolve("2")
    chat.record(cat.id, parse_intent("segment the cat"), _summary("cat"))
    chat.record(car.id, parse_intent("detect car"), _summary("car"))
    assert chat.last_intent().prompt == "detect car"  # newest overall
    assert chat.last_intent(cat.id).prompt == "segment cat"
    assert [t.index for t in chat.history] == [1, 2]
    assert chat.last_turn(car.id).summary.labels == ("car",)


@pytest.mark.parametrize(
    ("image_id", "intent", "message"),
    [
        ("img-9", Intent(task="ocr", prompt="ocr"), "unknown image id 'img-9'"),  # id
        ("img-1", Intent(task="free", prompt="", action="undo"), "only intents"),  # run
    ],
)
def test_record_rejects_bad_input(
    chat: Conversation, image_id: str, intent: Intent, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        chat.record(image_id, intent, _summary("x"))


def test_undo_walks_back_per_image(chat: Conversation) -> None:
    cat, car = chat.resolve("1"), chat.resolve("2")
    first = chat.record(cat.id, parse_intent("segment the cat"), _summary("a"))
    chat.record(car.id, parse_intent("detect car"), _summary("b"))
    chat.record(cat.id, parse_intent("also the dog", first.intent), _summary("c"))
    assert chat.can_undo(cat.id)
    shown = chat.undo(cat.id)  # back to "segment cat" on cat.jpg
    assert shown == first
    assert chat.active_image == cat
    assert chat.last_intent(cat.id).prompt == "segment cat"
    assert chat.undo(cat.id) is None  # back to the plain photo
    assert not chat.can_undo(cat.id)
    with pytest.raises(UserInputError, match="nothing to undo"):
        chat.undo(cat.id)
    assert chat.last_intent().prompt == "detect car"  # other image untouched


def test_undo_default_takes_back_newest_turn(chat: Conversation) -> None:
    cat, car = chat.resolve("1"), chat.resolve("2")
    chat.record(car.id, parse_intent("detect car"), _summary("b"))
    chat.record(cat.id, parse_intent("ocr"), _summary("c"))
    assert chat.undo() is None  # cat.jpg had only that turn
    assert chat.active_image == cat
    assert [t.intent.prompt for t in chat.history] == ["detect car"]


def test_refinement_flow_through_conversation(chat: Conversation) -> None:
    """parse_intent(previous=last_intent()) across turns, then undo."""
    image = chat.resolve(None)
    for text, prompt in [
        ("segment the cat", "segment cat"),
        ("also the dog", "segment cat ; dog"),
        ("now as boxes", "detect cat ; dog"),
    ]:
        intent = parse_intent(text, chat.last_intent())
        assert intent.prompt == prompt
        chat.record(image.id, intent, _summary(prompt))
    undo = parse_intent("undo", chat.last_intent())
    assert undo.action == "undo"
    assert chat.undo().intent.prompt == "segment cat ; dog"
    assert parse_intent("remove the dog", chat.last_intent()).prompt == "segment cat"


def test_summary_from_result() -> None:
    intent = parse_intent("detect cat ; dog")
    result = AnalysisResult(
        intent=intent,
        raw_text="<loc0000><loc0000><loc0512><loc0512> cat",
        detections=(
            Detection("cat", (0, 0, 5, 5), np.ones((10, 10), dtype=bool)),
            Detection(None, (1, 1, 2, 2)),
        ),
        answer=None,
        truncated=True,
    )
    summary = ResultSummary.from_result(result)
    assert summary.raw_text == result.raw_text
    assert summary.labels == ("cat", None)
    assert summary.truncated and summary.answer is None


def test_photos_of_one_message_are_the_default_until_one_is_selected(
    chat: Conversation,
) -> None:
    chat.set_group(list(chat.images))
    assert [r.name for r in chat.resolve(None)] == ["cat.jpg", "car.png"]
    assert chat.resolve("1").name == "cat.jpg"  # a named image is still one
    with pytest.raises(UserInputError, match="Pick one image"):
        chat.select(None)
    chat.select("1")
    assert chat.resolve(None).name == "cat.jpg"  # selecting ends the group
    chat.set_group(list(chat.images))
    chat.add_image("dog.png", "/tmp/u/3.png", (10, 10))  # a new upload ends it
    assert chat.resolve(None).name == "dog.png"


def test_group_survives_a_snapshot_and_loses_removed_images(chat: Conversation):
    chat.set_group(list(chat.images))
    again = Conversation.from_dict(chat.to_dict())
    assert [r.name for r in again.resolve(None)] == ["cat.jpg", "car.png"]
    again.remove_image("2")
    assert again.resolve(None).name == "cat.jpg"
    with pytest.raises(ValueError, match="unknown image ids"):
        chat.set_group([ImageRecord("img-9", "x", "/x", (1, 1), 9)])


def test_hidden_objects_are_a_turn_of_their_own(chat: Conversation) -> None:
    car = chat.resolve(None)
    first = chat.record(car.id, parse_intent("detect cat ; dog"), _summary("x"))
    redraw = chat.record(car.id, first.intent, first.summary, hidden=(1,))
    assert chat.last_turn(car.id).hidden == (1,)
    snapshot = Conversation.from_dict(chat.to_dict())
    assert snapshot.last_turn(car.id) == redraw
    assert chat.undo() == first  # "undo" brings hidden objects back
    assert first.hidden == ()
