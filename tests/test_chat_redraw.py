"""chat.redraw: which numbered objects stay hidden after "only"/"remove"/"show all"."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise

import pytest

from chat.redraw import _hidden_after
from core.errors import UserInputError
from core.types import ViewChange

# (change, hidden before, objects in the result, hidden after, expectation)
CASES = [
    (ViewChange(keep=(1, 3)), (), 4, (2, 4), does_not_raise()),  # only 1 and 3
    (ViewChange(keep=(2,)), (2,), 3, (1, 3), does_not_raise()),  # only a hidden one
    (ViewChange(drop=(2,)), (), 3, (2,), does_not_raise()),  # remove 2
    (ViewChange(drop=(3,)), (2,), 3, (2, 3), does_not_raise()),  # remove adds up
    (ViewChange(show_all=True), (1, 2), 3, (), does_not_raise()),  # show all
    (ViewChange(layers=(("boxes", False),)), (2,), 3, (2,), does_not_raise()),  # kept
    (ViewChange(layers=(("boxes", False),)), (), 0, (), does_not_raise()),  # none found
    (
        ViewChange(keep=(4,)),
        (),
        3,
        None,
        pytest.raises(UserInputError, match=r"no object 4: the last result has 3"),
    ),  # out of range
    (
        ViewChange(drop=(0,)),
        (),
        3,
        None,
        pytest.raises(UserInputError, match="no object 0"),
    ),  # zero
    (
        ViewChange(drop=(1, 2)),
        (3,),
        3,
        None,
        pytest.raises(UserInputError, match="hide every object"),
    ),  # nothing left
    (
        ViewChange(keep=(1,)),
        (),
        0,
        None,
        pytest.raises(UserInputError, match="found no objects"),
    ),  # empty result
]


@pytest.mark.parametrize(("change", "before", "count", "after", "expectation"), CASES)
def test_hidden_after(change, before, count, after, expectation) -> None:
    with expectation:
        assert _hidden_after(change, before, count) == after
