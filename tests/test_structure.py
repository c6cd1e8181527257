"""The package's shape: imports run one way, no module grows past a reader's sitting.

Adapters import the engine; the engine imports the store, the codec, the
record and the tokens; nothing imports back up. Imports under
``TYPE_CHECKING`` count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "flask_scs_redis"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 350

# Each module may import only modules on a lower layer, or on its own layer
# when they are named there; the testing package stands apart.
LAYERS = [
    {
        "errors",
        "clock",
        "tokens",
        "keys",
        "outages",
        "scripts",
        "codec",
        "options",
        "connections",
        "sealing",
        "signals",
        "validation",
    },
    {"record", "durable", "commands", "store", "rotation"},
    {"state", "changes", "indexes", "users", "backend"},
    {"session", "writes", "saving"},
    {"engine", "admin", "checks"},
    {"cookies", "cli", "migration"},
    {"flask_interface", "middleware", "login"},
    {"extension"},
    {"__init__"},
]


def name_of(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def imports_of(path: Path) -> set[str]:
    """The package modules that ``path`` imports, by name relative to the package."""
    here = name_of(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
                names = [module] if node.module else [alias.name for alias in node.names]
                found.update(names if node.module else [f"{module}.{n}".strip(".") for n in names])
            elif node.module and node.module.startswith("flask_scs_redis"):
                found.add(node.module.removeprefix("flask_scs_redis").strip("."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flask_scs_redis."):
                    found.add(alias.name.removeprefix("flask_scs_redis."))
    known = {name_of(module) for module in MODULES}
    return {name for name in found if name in known}


GRAPH = {name_of(path): imports_of(path) for path in MODULES}


def test_the_package_has_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = " -> ".join([*trail[trail.index(module) :], module])
            pytest.fail(f"import cycle: {cycle}")
        if module in done:
            return
        for imported in GRAPH[module]:
            visit(imported, [*trail, module])
        done.add(module)

    for module in GRAPH:
        visit(module, [])


def test_imports_run_down_the_layers() -> None:
    layer_of = {module: number for number, layer in enumerate(LAYERS) for module in layer}
    for module, imported in GRAPH.items():
        if module.startswith("testing"):
            assert all(name.startswith("testing") for name in imported), module
            continue
        assert module in layer_of, f"{module} is on no layer: place it in LAYERS"
        for name in imported:
            assert not name.startswith("testing"), f"{module} imports the test tools"
            assert layer_of[name] < layer_of[module] or (
                layer_of[name] == layer_of[module] and name != module
            ), f"{module} imports {name}, which is above it"


def test_the_engine_knows_no_http_and_the_session_no_engine() -> None:
    assert not GRAPH["engine"] & {"cookies", "flask_interface", "middleware", "extension"}
    assert "engine" not in GRAPH["session"]
    assert not GRAPH["store"] & {"session", "state", "engine", "record", "codec"}


@pytest.mark.parametrize("path", MODULES, ids=[name_of(path) for path in MODULES])
def test_no_module_is_longer_than_a_reader_takes_in(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{name_of(path)} has {lines} lines: split it by what it does"


def constants_in(path: Path) -> list[object]:
    """The literal values in the code of ``path``, leaving out docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings
    ]


@pytest.mark.parametrize(
    "default", [65536, "_user_id", "scs:session:", "scs.session", "redis://127.0.0.1:6379/0"]
)
def test_each_default_is_written_once_in_options(default: object) -> None:
    places = [name_of(path) for path in MODULES for value in constants_in(path) if value == default]
    assert places == ["options"], places
