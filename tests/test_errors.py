"""core.errors lists every error a client can see; docs/api.md documents each."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import core.errors
from core.errors import AppError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
ROW = re.compile(r"^\| (\d{3}) \| (.+?) \| ")


def _app_errors() -> list[type[AppError]]:
    return [
        cls
        for _, cls in inspect.getmembers(core.errors, inspect.isclass)
        if issubclass(cls, AppError)
    ]


def _documented() -> dict[str, int]:
    """code -> status from the "Errors and limits" table of docs/api.md."""
    text = DOCS.read_text(encoding="utf-8")
    table = text.split("## Errors and limits", 1)[1]
    codes: dict[str, int] = {}
    for line in table.splitlines():
        match = ROW.match(line)
        if match:
            for code in re.findall(r"`([a-z_]+)`", match.group(2)):
                codes[code] = int(match.group(1))
    return codes


def test_every_app_error_is_defined_in_core_errors() -> None:
    """No AppError subclass is defined outside core/errors.py."""
    import importlib
    import pkgutil

    import core

    outside = []
    for info in pkgutil.walk_packages(core.__path__, "core."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, AppError) and cls.__module__ != "core.errors":
                outside.append(f"{cls.__module__}.{name}")
    assert outside == [], f"AppError subclasses outside core/errors.py: {outside}"


@pytest.mark.parametrize("cls", _app_errors(), ids=lambda cls: cls.__name__)
def test_each_error_code_is_documented_with_its_status(cls) -> None:
    documented = _documented()
    assert cls.code in documented, f"{cls.code} is missing from docs/api.md"
    assert documented[cls.code] == cls.http_status, (
        f"docs/api.md gives {cls.code} status {documented[cls.code]}, "
        f"the code says {cls.http_status}"
    )


def test_docs_name_no_code_the_server_cannot_send() -> None:
    known = {cls.code for cls in _app_errors()} | {"internal_error"}
    assert set(_documented()) - known == set()
