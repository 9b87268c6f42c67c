from __future__ import annotations

import pytest

from chat.analysis import waiting_text
from core.engine.queue import Place


@pytest.mark.parametrize(
    ("place", "expected", "absent"),
    [
        (Place(3, 7.4), "3 request(s) ahead of yours, about 7 s", None),  # measured
        (Place(1, 0.2), "1 request(s) ahead of yours, about 1 s", None),  # never 0 s
        (Place(2, None), "2 request(s) ahead of yours.", "about"),  # not measured yet
    ],
)
def test_waiting_message_shows_place_and_expected_wait(place, expected, absent):
    text = waiting_text(place)
    assert expected in text and "Stop" in text
    assert absent is None or absent not in text


def test_waiting_message_says_when_its_turn_has_come():
    assert "Your turn" in waiting_text(Place(0, 0.0))
