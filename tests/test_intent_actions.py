"""core.types.Action: the model request and the chat commands apart, checked
where an Intent is made."""

from __future__ import annotations

import json
import re
from contextlib import nullcontext as does_not_raise
from dataclasses import replace

import pytest

from core.conversation import intent_from_dict, intent_to_dict
from core.intent import parse_intent
from core.types import Action, ChatCommand, Intent, ModelRequest, Region, ViewChange

UNKNOWN = pytest.raises(ValueError, match=re.escape("action must be one of ['run'"))


@pytest.mark.parametrize(
    ("action", "expected", "expectation"),
    [
        ("run", Action.RUN, does_not_raise()),  # the default's string
        ("undo", Action.UNDO, does_not_raise()),  # a command as a string
        (Action.VIEW, Action.VIEW, does_not_raise()),  # already an Action
        ("pick_region", Action.PICK_REGION, does_not_raise()),  # underscore name
        ("explode", None, UNKNOWN),  # not an action
        ("Undo", None, UNKNOWN),  # case matters: values are exact
        ("", None, UNKNOWN),  # empty
        (None, None, UNKNOWN),  # missing
    ],
)
def test_intent_checks_its_action(action, expected, expectation) -> None:
    with expectation:
        intent = Intent(task="free", prompt="", action=action)
        assert intent.action is expected


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("detect cat", Action.RUN),  # a model request
        ("help", Action.HELP),  # case: help
        ("undo", Action.UNDO),  # case: undo
        ("export all", Action.EXPORT),  # case: export
        ("use image 2", Action.SELECT),  # case: select
        ("draw a region", Action.PICK_REGION),  # case: region pick
        ("only 1 and 3", Action.VIEW),  # case: redraw
        ("hmm", Action.CLARIFY),  # case: unclear
    ],
)
def test_parse_intent_gives_an_action_member(text, action) -> None:
    intent = parse_intent(text, parse_intent("detect cat"))
    assert intent.action is action
    assert intent.runs_model == (action is Action.RUN)


def test_a_model_request_is_the_request_view() -> None:
    region = Region("fraction", (0.0, 0.0, 0.5, 0.5))
    intent = parse_intent("detect cat ; dog")
    intent = replace(intent, region=region, image_ref="2")
    assert intent.command is None
    assert intent.request == ModelRequest(
        "detect", "detect cat ; dog", ("cat", "dog"), "en", region, "2"
    )


def test_a_chat_command_is_the_command_view() -> None:
    view = ViewChange(keep=(1, 3))
    intent = Intent(task="free", prompt="", action="view", image_ref="2", view=view)
    assert intent.request is None
    assert intent.command == ChatCommand(Action.VIEW, None, "2", view)
    with pytest.raises(ValueError, match=re.escape("never Action.RUN")):
        ChatCommand(Action.RUN)


def test_a_saved_intent_keeps_its_action_and_refuses_an_unknown_one() -> None:
    intent = parse_intent("undo")
    data = json.loads(json.dumps(intent_to_dict(intent)))  # as state.json has it
    assert data["action"] == "undo"
    assert intent_from_dict(data) == intent
    with UNKNOWN:
        intent_from_dict({**data, "action": "rm -rf"})
