"""The tree shows the design: no import circle, a small core top, seams importable."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "chat")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ours that ``path`` imports, lazily inside functions too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):  # a lazy import hides a circle, it does not break it
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    known = {_module_name(p) for p in files}
    graph = {}
    for path in files:
        name = _module_name(path)
        graph[name] = _imports(path, known) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodule is not a circle
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_core_keeps_at_most_20_modules_at_its_top() -> None:
    modules = sorted(p.name for p in (ROOT / "core").glob("*.py"))
    assert len(modules) <= 20, modules


def test_the_root_holds_only_the_app_and_logging_config() -> None:
    assert sorted(p.name for p in ROOT.glob("*.py")) == [
        "chainlit_app.py",
        "logging_config.py",
    ]


def test_only_core_persist_imports_chainlit() -> None:
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        if "persist" in path.relative_to(ROOT).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "chainlit" or n.startswith("chainlit.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("core.types", "ParsedObject"),
        ("core.types", "Detection"),
        ("core.types", "AnalysisResult"),
        ("core.tokens", "parse_objects"),
        ("core.tokens", "IMAGE_TOKEN"),
        ("core.geometry", "box_to_pixels"),
        ("core.mask_decoder", "MaskDecoder"),
        ("core.intent", "parse_intent"),
        ("core.pipeline", "analyze"),
        ("core.model_manager", "ModelManager"),
        ("core.engine", "get_model_manager"),
        ("core.engine", "Engine"),
    ],
)
def test_design_seams_import(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)
