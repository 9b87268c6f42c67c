"""chat.options.ChatOptions: the settings panel's values, clamped to the widgets."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from chat.options import ChatOptions


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, ChatOptions()),  # nothing sent: defaults
        (None, ChatOptions()),  # not a mapping
        (
            {"decoding": "nucleus 0.3", "max_new_tokens": 64, "opacity": 0.2},
            ChatOptions(decoding="nucleus 0.3", max_new_tokens=64, opacity=0.2),
        ),  # valid values kept
        ({"max_new_tokens": 10**9}, ChatOptions(max_new_tokens=1024)),  # above slider
        ({"max_new_tokens": -5}, ChatOptions(max_new_tokens=0)),  # below slider
        ({"max_new_tokens": "lots"}, ChatOptions()),  # not a number
        ({"max_new_tokens": float("nan")}, ChatOptions()),  # not finite
        ({"max_new_tokens": True}, ChatOptions()),  # a bool is not a number
        ({"opacity": 7}, ChatOptions(opacity=1.0)),  # clamped
        ({"opacity": float("-inf")}, ChatOptions()),  # not finite
        ({"decoding": "beam 99"}, ChatOptions()),  # unknown preset
        ({"show_labels": "false"}, ChatOptions()),  # a string is not a switch
        ({"show_boxes": False}, ChatOptions(show_boxes=False)),  # switch kept
        ({"evil": 1, "opacity": 0.3}, ChatOptions(opacity=0.3)),  # unknown key ignored
        ({"model": " /m/b "}, ChatOptions(model="/m/b")),  # model dropdown kept
        ({"model": ["a"]}, ChatOptions()),  # a model id must be a string
        ({"model": "x" * 501}, ChatOptions()),  # too long to be one of MODELS
    ],
)
def test_from_values_clamps_what_a_client_sends(values, expected) -> None:
    assert ChatOptions.from_values(values) == expected


def test_from_values_keeps_the_base_for_what_is_not_sent() -> None:
    base = ChatOptions(opacity=0.9, show_boxes=False)
    assert ChatOptions.from_values({"decoding": "nucleus 0.1"}, base=base) == (
        ChatOptions(decoding="nucleus 0.1", opacity=0.9, show_boxes=False)
    )


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, does_not_raise()),  # defaults
        ({"decoding": "x"}, pytest.raises(ValueError, match="decoding must be")),
        ({"max_new_tokens": 2000}, pytest.raises(ValueError, match=r"0\.\.1024")),
        ({"opacity": 1.5}, pytest.raises(ValueError, match="opacity must be")),
    ],
)
def test_built_directly_it_validates(kwargs, expectation) -> None:
    with expectation:
        ChatOptions(**kwargs)


def test_round_trip_through_the_saved_state() -> None:
    options = ChatOptions(decoding="nucleus 0.1", max_new_tokens=8, opacity=0.25)
    assert ChatOptions.from_values(options.to_dict()) == options
