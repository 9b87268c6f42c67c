"""The MCP door's pure rules: which ``image`` text is a local path (decided
from the text alone), targets and languages, and the /mcp body limit."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from pathlib import Path

import pytest

from api.mcp_tools import _local_path, check_language, clean_targets
from core.config import MB
from core.errors import UserInputError
from web.bodylimit import FORM_SLACK_BYTES, upload_limits


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("/home/me/cat.jpg", Path("/home/me/cat.jpg")),  # case: absolute
        ("/etc/passwd", Path("/etc/passwd")),  # case: no suffix, still a path
        ("/no/such/file", Path("/no/such/file")),  # case: missing: same answer
        ("file:///tmp/a.png", Path("/tmp/a.png")),  # case: file URL
        ("./cat.jpg", Path("cat.jpg")),  # case: relative
        ("~/cat.jpg", Path("~/cat.jpg").expanduser()),  # case: home folder
        ("C:\\Users\\me\\cat.jpg", Path("C:\\Users\\me\\cat.jpg")),  # case: Windows
        ("/9j/4AAQSkZJRgABAQ", None),  # case: a JPEG's base64
        ("iVBORw0KGgoAAAANSUhEUg", None),  # case: a PNG's base64
        ("data:image/png;base64,iVBOR", None),  # case: a data URL
    ],
)
def test_local_paths_are_told_from_base64_by_the_text(text, path) -> None:
    assert _local_path(text) == path


@pytest.mark.parametrize(
    ("targets", "expected", "raises"),
    [
        (["dog", " big  bike "], ("dog", "big bike"), does_not_raise()),  # case: list
        ("dog ; bike", ("dog", "bike"), does_not_raise()),  # case: PaliGemma style
        ([], None, pytest.raises(UserInputError)),  # case: nothing to find
        ([" "], None, pytest.raises(UserInputError)),  # case: blank
        (["a;b"], None, pytest.raises(UserInputError)),  # case: a hidden separator
        (["x"] * 21, None, pytest.raises(UserInputError)),  # case: too many
        (["x" * 101], None, pytest.raises(UserInputError)),  # case: too long
    ],
)
def test_clean_targets(targets, expected, raises) -> None:
    with raises:
        assert clean_targets(targets) == expected


@pytest.mark.parametrize(
    ("language", "raises"),
    [
        ("en", does_not_raise()),  # case: English
        (" DE ", does_not_raise()),  # case: case and spaces
        ("xx", pytest.raises(UserInputError)),  # case: unknown code
        ("en ocr", pytest.raises(UserInputError)),  # case: prompt injection
    ],
)
def test_check_language(language, raises) -> None:
    with raises:
        check_language(language)


def test_mcp_bodies_carry_base64_like_process() -> None:
    limit_for = upload_limits(3)
    base64_limit = 3 * MB * 4 // 3 + FORM_SLACK_BYTES
    assert limit_for("/mcp") == limit_for("/process") == base64_limit
    assert limit_for("/segment") == 3 * MB + FORM_SLACK_BYTES
