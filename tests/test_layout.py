"""The tree shows the design: no import circle, a small core top, seams importable,
data flowing one way (doors -> core), core free of doors and web frameworks."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "chat", "api", "cli", "web")
DOORS = ("chat", "api", "cli")
WEB_FRAMEWORKS = ("fastapi", "starlette", "chainlit", "uvicorn", "socketio", "engineio")


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


def _all_imports(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, lazily inside functions too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.partition(".")[0]


def imports_of(
    package: str, forbidden: tuple[str, ...], root: Path = ROOT
) -> list[str]:
    """``file: module`` for each import under ``package`` of a ``forbidden``
    top-level package (``forbidden`` itself never counts for its own files)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for name in sorted(_all_imports(path)):
            if _top(name) in forbidden and _top(name) != package:
                found.append(f"{path.relative_to(root)}: {name}")
    return found


def test_core_imports_no_door_and_no_web_package() -> None:
    assert imports_of("core", (*DOORS, "web")) == []


def test_core_imports_no_web_framework() -> None:
    assert imports_of("core", WEB_FRAMEWORKS) == []


@pytest.mark.parametrize("door", DOORS)
def test_doors_do_not_import_each_other(door: str) -> None:
    """chainlit_app.py, the composition root, is where doors meet."""
    assert imports_of(door, DOORS) == []


def test_web_plumbing_imports_no_door() -> None:
    assert imports_of("web", DOORS) == []


def test_the_import_rules_see_lazy_imports(tmp_path: Path) -> None:
    package = tmp_path / "core"
    package.mkdir()
    (package / "lazy.py").write_text(
        "def f():\n    from chat.persist import db\n    import starlette.types\n"
    )
    found = imports_of("core", DOORS, tmp_path)
    assert found == ["core/lazy.py: chat.persist"]
    found = imports_of("core", WEB_FRAMEWORKS, tmp_path)
    assert found == ["core/lazy.py: starlette.types"]


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
        ("core.engine", "get_model_manager"),
        ("core.engine", "Engine"),
    ],
)
def test_design_seams_import(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


MAX_FUNCTION_LINES = 60
# None left: the service and commands work (issue 23) split the last ones.
LONG_FUNCTIONS_ALLOWED: frozenset[str] = frozenset()


def long_functions(
    paths: list[Path], limit: int = MAX_FUNCTION_LINES, root: Path = ROOT
) -> list[str]:
    """``file:qualified.name (lines)`` for each function longer than ``limit``
    lines, counted from its ``def`` to its last line (decorators not counted),
    except those in LONG_FUNCTIONS_ALLOWED and the functions nested in them."""
    found = []

    def visit(node: ast.AST, file: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                if f"{file}:{name}" in LONG_FUNCTIONS_ALLOWED:
                    continue
                name += "."
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found.append(f"{file}:{name[:-1]} ({lines})")
            visit(child, file, name)

    for path in paths:
        file = path.relative_to(root).as_posix()
        visit(ast.parse(path.read_text(encoding="utf-8")), file, "")
    return found


def test_functions_are_short() -> None:
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    found = long_functions([*paths, ROOT / "chainlit_app.py"])
    assert found == [], f"functions over {MAX_FUNCTION_LINES} lines: {found}"


def test_the_length_rule_counts_from_def_to_the_last_line(tmp_path: Path) -> None:
    def body(indent: int) -> str:
        return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(3))

    source = f"@decorated\ndef short():\n{body(4)}\nclass K:\n    def long(self):\n"
    (tmp_path / "m.py").write_text(source + body(8) + "\n        return x2\n")
    assert long_functions([tmp_path / "m.py"], 4, tmp_path) == ["m.py:K.long (6)"]


# Doors reach the model only through the application service (core.service) --

KERNEL = ("core.pipeline", "core.tiling")  # the analysis kernel's entry points
# What a door may name from core.engine: types and the queue's vocabulary it
# needs to annotate, watch a queue place or show a model's status; never an
# engine factory, the decoding, the batcher or the queue's submit path.
DOOR_ENGINE_NAMES = {
    "core.engine.base": {"Engine", "ModelStatus"},  # types, status for /health
    "core.engine.queue": {"Place", "CHAT", "API", "ModelQueue"},  # types, kinds
    "core.engine.registry": {"EngineRegistry"},  # a type
}


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def model_reaches(path: Path) -> list[str]:
    """Imports in ``path`` that reach the model around the service: the kernel
    (core.pipeline, core.tiling) or core.engine beyond DOOR_ENGINE_NAMES."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            pairs = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            pairs = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in pairs:
            if any(_within(module, k) for k in KERNEL):
                found.append(module)
            elif _within(module, "core.engine"):
                allowed = DOOR_ENGINE_NAMES.get(module, set())
                if name is None or name not in allowed:
                    found.append(f"{module}.{name}" if name else module)
    return found


def door_model_imports(root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}: {name}"
        for door in DOORS
        for path in sorted((root / door).rglob("*.py"))
        for name in model_reaches(path)
    ]


def test_doors_reach_the_model_only_through_the_service() -> None:
    assert door_model_imports() == []


def kernel_importers(root: Path = ROOT) -> list[str]:
    """Modules outside core.service (and the kernel itself) that import
    core.pipeline or core.tiling."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = _module_name(path) if root == ROOT else path.stem
            if _within(module, "core.service") or module in KERNEL:
                continue
            names = _all_imports(path)
            if any(_within(n, k) for n in names for k in KERNEL):
                found.append(str(path.relative_to(root)))
    return found


def test_only_the_service_imports_the_pipeline_and_tiling() -> None:
    assert kernel_importers() == []


def test_the_door_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    door = tmp_path / "chat"
    door.mkdir()
    (door / "sneaky.py").write_text(
        "from core.engine.queue import Place, ModelQueue\n"  # allowed: types
        "from core.engine.base import Engine\n"
        "def f():\n"
        "    from core.pipeline import generate\n"
        "    from core.engine import get_engines\n"
        "    from core.engine.queue import KINDS\n"
        "    import core.tiling\n"
    )
    assert door_model_imports(tmp_path) == [
        "chat/sneaky.py: core.pipeline",
        "chat/sneaky.py: core.engine.get_engines",
        "chat/sneaky.py: core.engine.queue.KINDS",
        "chat/sneaky.py: core.tiling",
    ]
    assert kernel_importers(tmp_path) == ["chat/sneaky.py"]
