"""chat.closely: when the chat looks closely, what it costs, what a kept turn
gives back, and a clear message when a saved turn's objects are broken."""

from __future__ import annotations

import pytest

from chat.closely import look_grid, looks, tile_text
from chat.options import ChatOptions
from core.conversation import ImageRecord, ResultSummary, Turn
from core.errors import UserInputError
from core.intent import parse_intent
from core.kept import keep_objects
from core.service.replay import kept_result
from core.types import Detection, Intent, Region

ON, OFF = ChatOptions(look_closely=True), ChatOptions()
PHONE = (4032, 3024)


@pytest.mark.parametrize(
    ("options", "request_text", "size_wh", "grid", "runs"),
    [
        (ON, "segment cat", PHONE, (3, 3), 10),  # 9 tiles + the whole photo
        (ON, "detect cat ; dog", (2000, 1500), (2, 2), 5),
        (OFF, "segment cat", PHONE, (1, 1), 1),  # the setting is off
        (ON, "segment cat", (1024, 768), (1, 1), 1),  # small: one look is enough
        (ON, "caption", PHONE, (1, 1), 1),  # only detect/segment are tiled
        (ON, "zoom into the top left: detect cat", PHONE, (2, 2), 5),  # 2016x1512
        (ON, "region 0,0 to 1000,1000: detect cat", PHONE, (1, 1), 1),
    ],
)
def test_look_grid_and_its_cost(options, request_text, size_wh, grid, runs) -> None:
    intent = parse_intent(request_text)
    assert intent.action == "run", intent
    assert look_grid(options, intent, size_wh) == grid
    assert looks(options, intent, size_wh) == runs


def test_a_region_off_the_photo_is_a_clear_error() -> None:
    intent = Intent(
        task="detect", prompt="detect cat", region=Region("px", (5000, 0, 6000, 10))
    )
    with pytest.raises(UserInputError, match=r"not on this photo.*4032x3024"):
        look_grid(ON, intent, PHONE)


def test_progress_text() -> None:
    assert tile_text(1, 10) == "whole photo first, then 9 tiles"
    assert tile_text(4, 10) == "tile 3 of 9"
    assert tile_text(10, 10) == "tile 9 of 9"


def _turn(objects) -> tuple[Turn, ImageRecord]:
    record = ImageRecord("img-1", "a.jpg", "/x/001.jpg", (100, 80), 1)
    intent = parse_intent("detect cat")
    summary = ResultSummary("<loc0001> cat", ("cat",), tiles=4, objects=objects)
    return Turn(1, record.id, intent, summary), record


def _with_size(pair: tuple[Turn, ImageRecord]) -> tuple[Turn, tuple[int, int]]:
    turn, record = pair
    return turn, record.size_wh


def test_a_kept_turn_comes_back_without_the_model() -> None:
    kept = keep_objects([Detection("cat", (1, 2, 30, 40), image_wh=(100, 80))])
    result = kept_result(*_with_size(_turn(kept)), 40_000_000)
    assert [(d.label, d.box_px) for d in result.detections] == [("cat", (1, 2, 30, 40))]
    assert result.image_size_wh == (100, 80) and result.timings_s["tiles"] == 4


def test_broken_kept_objects_say_so() -> None:
    with pytest.raises(UserInputError, match=r"could not be read back.*ask again"):
        kept_result(*_with_size(_turn(({"box": [0, 0, 500, 5]},))), 40_000_000)
