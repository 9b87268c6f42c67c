"""Conversation edge cases: references by name and number among three photos,
photo groups after a removal, pruning to one photo, the exact messages a user
reads, and saved intents (region, view) through a JSON trip."""

from __future__ import annotations

import json

import pytest

from core.conversation import (
    Conversation,
    ResultSummary,
    intent_from_dict,
    intent_to_dict,
)
from core.errors import UserInputError
from core.intent.parse import parse_intent
from core.types import AnalysisResult, Intent, Region, ViewChange

LIST = "this chat has 3 images: 1. my.cat.jpg, 2. car.png, 3. dog.webp (active)."


@pytest.fixture
def chat() -> Conversation:
    conversation = Conversation()
    conversation.add_image("my.cat.jpg", "/tmp/u/1.jpg", (640, 480))
    conversation.add_image("car.png", "/tmp/u/2.png", (800, 600))
    conversation.add_image("dog.webp", "/tmp/u/3.webp", (300, 200))
    return conversation


def _json_trip(chat: Conversation) -> Conversation:
    return Conversation.from_dict(json.loads(json.dumps(chat.to_dict())))


def _message(call, *args) -> str:
    with pytest.raises(UserInputError) as caught:
        call(*args)
    return caught.value.message


# references --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_ref", "expected"),
    [
        ("last", "dog.webp"),  # case: the newest of three, not the second
        ("my.cat", "my.cat.jpg"),  # case: a name with dots, without its extension
        ("MY.CAT", "my.cat.jpg"),  # case: case-insensitive
        ("dog", "dog.webp"),  # case: plain name without extension
    ],
)
def test_resolve_among_three(chat: Conversation, image_ref: str, expected: str):
    assert chat.resolve(image_ref).name == expected


def test_only_the_last_extension_is_dropped_from_a_name(chat: Conversation) -> None:
    assert _message(chat.resolve, "my") == f"There is no image named “my”; {LIST}"


def test_without_an_active_image_plain_requests_use_the_newest(
    chat: Conversation,
) -> None:
    data = chat.to_dict()
    data["active_id"] = "img-9"  # a hand-edited or stale saved state
    restored = Conversation.from_dict(data)
    assert restored.active_image is None
    assert restored.resolve(None).name == "dog.webp"
    assert restored.resolve("").name == "dog.webp"


# messages ----------------------------------------------------------------------


def test_messages_a_user_reads(chat: Conversation) -> None:
    empty = Conversation()
    assert _message(empty.resolve, None) == (
        "There are no images in this chat yet; drop a photo first."
    )
    assert empty.describe_images() == "this chat has no images yet."
    assert _message(empty.undo) == "There is nothing to undo yet."
    one = Conversation()
    one.add_image("cat.jpg", "/tmp/u/1.jpg", (10, 10))
    assert one.describe_images() == "this chat has 1 image: 1. cat.jpg (active)."
    assert _message(chat.remove_image, "all") == (
        "Remove one image at a time, e.g. “remove image 2”."
    )
    assert _message(chat.select, "all") == (
        f"Pick one image to work on, e.g. “use image 1”; {LIST}"
    )
    chat.set_group(list(chat.images))
    assert _message(chat.select, None) == (
        f"Pick one image to work on, e.g. “use image 1”; {LIST}"
    )


# groups, removal, pruning --------------------------------------------------------


def test_removing_a_photo_of_a_group_keeps_the_others(chat: Conversation) -> None:
    chat.set_group(list(chat.images))
    chat.remove_image("2")
    assert [r.name for r in chat.resolve(None)] == ["my.cat.jpg", "dog.webp"]


def test_a_group_down_to_one_photo_is_a_single_image(chat: Conversation) -> None:
    chat.set_group(list(chat.images[1:]))  # car and dog sent in one message
    chat.remove_image("dog")
    assert [r.name for r in chat.group] == ["car.png"]
    assert chat.resolve(None).name == "car.png"
    assert chat.select(None).name == "car.png"  # not "pick one image"


def test_prune_to_one_keeps_only_the_active_photo(chat: Conversation) -> None:
    chat.select("2")
    removed = chat.prune(1)
    assert [r.name for r in removed] == ["my.cat.jpg", "dog.webp"]
    assert [(r.order, r.name) for r in chat.images] == [(1, "car.png")]


@pytest.mark.parametrize("size_wh", [(640, 0), (0, 0), (-1, 480)])
def test_add_image_refuses_an_empty_size(size_wh: tuple[int, int]) -> None:
    with pytest.raises(ValueError) as caught:
        Conversation().add_image("a.png", "/tmp/a.png", size_wh)
    assert str(caught.value) == (
        f"size_wh must be positive (width, height), got {size_wh}"
    )


def test_drop_missing_removes_the_gone_photo_not_the_active_one(
    chat: Conversation,
) -> None:
    gone = chat.drop_missing(lambda path: path != "/tmp/u/2.png")
    assert [r.name for r in gone] == ["car.png"]
    assert [r.name for r in chat.images] == ["my.cat.jpg", "dog.webp"]
    assert chat.active_image.name == "dog.webp"


# snapshots -----------------------------------------------------------------------


def test_an_empty_or_cleared_chat_can_be_saved_and_restored(
    chat: Conversation,
) -> None:
    chat.clear()
    for empty in (Conversation(), chat):  # never had a photo; had three
        restored = _json_trip(empty)
        assert restored.images == () and restored.history == ()
        assert restored.active_image is None
        assert restored.add_image("new.png", "/tmp/n.png", (5, 5)).order == 1
    assert chat.add_image("new.png", "/tmp/n.png", (5, 5)).id == "img-4"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a conversation snapshot version 1, got <class 'list'>"),
        ("{}", "expected a conversation snapshot version 1, got <class 'str'>"),
        ({}, "expected a conversation snapshot version 1, got None"),
    ],
)
def test_a_snapshot_that_is_not_one_names_what_it_got(data, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Conversation.from_dict(data)
    assert str(caught.value) == message


def _region_and_view_intents() -> list[Intent]:
    return [
        Intent(
            task="detect",
            prompt="detect bottle",
            targets=("bottle",),
            region=Region("fraction", (0.0, 0.0, 0.5, 0.5)),
        ),
        Intent(
            task="segment",
            prompt="segment car ; wheel",
            targets=("car", "wheel"),
            region=Region("px", (100, 200, 600, 700)),
        ),
        Intent(
            task="segment",
            prompt="",
            action="view",
            view=ViewChange(
                keep=(1, 3),
                drop=(2,),
                show_all=True,
                layers=(("boxes", False), ("labels", True)),
            ),
        ),
    ]


@pytest.mark.parametrize("intent", _region_and_view_intents())
def test_region_and_view_survive_a_json_trip(intent: Intent) -> None:
    again = intent_from_dict(json.loads(json.dumps(intent_to_dict(intent))))
    assert again == intent


def test_a_turn_on_a_region_is_restored_with_its_region(chat: Conversation) -> None:
    intent = parse_intent("zoom into the top left and detect bottles")
    assert intent.region is not None
    chat.record("img-2", intent, ResultSummary("raw", ("bottle",)))
    restored = _json_trip(chat)
    assert restored.last_intent("img-2") == intent


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["detect"], "an intent must be an object, got list"),  # case: a list
        (
            {"prompt": "detect car", "language": "en"},
            "an intent needs ['task'], got keys ['language', 'prompt']",
        ),  # case: no task
        (
            {"task": "detect", "prompt": 42},
            "an intent's prompt must be a string, got 42",
        ),  # case: prompt of another type
        (
            {"task": "detect", "prompt": "x", "region": {"unit": "px", "box": [1]}},
            "an intent's region is malformed: {'unit': 'px', 'box': [1]}",
        ),  # case: a box of one number
    ],
)
def test_a_malformed_saved_intent_says_what_is_wrong(data, message: str) -> None:
    """The message is shown in the chat's "could not be restored" notice."""
    with pytest.raises(ValueError) as caught:
        intent_from_dict(data)
    assert str(caught.value) == message


def test_summary_keeps_the_answer() -> None:
    result = AnalysisResult(
        intent=parse_intent("what is in the picture?"),
        raw_text="A cat on a mat.",
        detections=(),
        answer="A cat on a mat.",
    )
    summary = ResultSummary.from_result(result)
    assert summary == ResultSummary("A cat on a mat.", (), "A cat on a mat.", False)


# "undo" takes back a whole message -------------------------------------------


def _ran(text: str) -> tuple[Intent, ResultSummary]:
    return parse_intent(text), ResultSummary(f"<loc0001> {text}")


def test_undo_request_takes_back_every_photo_of_the_last_message(chat) -> None:
    photos = [r.id for r in chat.images]
    first = chat.record(photos[0], *_ran("detect cat"))  # a request of its own
    together = chat.new_request()
    for image_id in photos:
        chat.record(image_id, *_ran("detect dog"), request=together)
    undone = chat.undo_request()
    assert [(record.id, turn) for record, turn in undone] == [
        (photos[0], first),
        (photos[1], None),
        (photos[2], None),
    ]
    assert chat.history == (first,)
    assert chat.undo_request() == [(chat.images[0], None)]
    assert _message(chat.undo_request) == "There is nothing to undo yet."


def test_a_redraw_after_a_message_is_undone_alone(chat) -> None:
    photos = [r.id for r in chat.images[:2]]
    together = chat.new_request()
    turns = [chat.record(i, *_ran("detect dog"), request=together) for i in photos]
    chat.record(photos[1], turns[1].intent, turns[1].summary, hidden=(1,))
    (only,) = chat.undo_request()
    assert only == (chat.images[1], turns[1])
    assert chat.active_image.id == photos[1]
    assert [t.index for t in chat.history] == [t.index for t in turns]


def test_requests_survive_the_snapshot_and_old_snapshots_undo_one_turn(chat) -> None:
    photos = [r.id for r in chat.images[:2]]
    together = chat.new_request()
    for image_id in photos:
        chat.record(image_id, *_ran("detect dog"), request=together)
    again = _json_trip(chat)
    assert again.new_request() == together + 1  # numbers are not reused
    assert [t.request for t in again.history] == [together, together]
    assert len(_json_trip(chat).undo_request()) == 2
    old = chat.to_dict()
    del old["next_request"]
    for turn in old["turns"]:
        del turn["request"]  # saved before requests were numbered
    restored = Conversation.from_dict(old)
    assert len(restored.undo_request()) == 1
    assert len(restored.history) == 1


def test_request_numbers_are_never_reused_even_across_snapshots(chat) -> None:
    assert [chat.new_request() for _ in range(3)] == [1, 2, 3]
    photo = chat.images[0].id
    chat.record(photo, *_ran("detect cat"), request=3)
    later = chat.new_request()
    chat.record(photo, *_ran("detect dog"), request=later)
    chat.undo_request()  # request 4 is gone, but its number was handed out
    again = _json_trip(chat)
    assert again.new_request() == 5  # reusing 4 would tie it to nothing, 3: to "cat"
    old = chat.to_dict()
    del old["next_request"]  # an older snapshot: numbers follow the turns
    assert Conversation.from_dict(old).new_request() == 4
    empty = Conversation().to_dict()
    del empty["next_request"]
    assert Conversation.from_dict(empty).new_request() == 1
