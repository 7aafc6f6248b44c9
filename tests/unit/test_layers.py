"""The architecture, checked from the source: no import cycle, imports only go down the layers,
only runtime/ touches the model libraries, only server/ touches the web framework.

Every `import` in claracore/ counts, including those inside functions (a lazy import that closes
a circle is still a circle); only `if TYPE_CHECKING:` blocks are left out, since they never run.
ARCHITECTURE.md describes the same layers in words.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "claracore"

#: Bottom to top: a module may import its own layer and the layers below, never one above.
#: A new top-level module or package must be placed here (the test says so when it is not).
LAYERS: list[set[str]] = [
    {
        "units",
        "errors",
        "fsutil",
        "events",
        "inputs",
        "yamldoc",
        "priority",
        "native",
    },  # native: the build tool, which imports nothing else
    {"config"},
    {"protocol"},
    {"modelfile"},
    {"runtime"},
    {"pool", "hardware", "monitor"},
    {"serving"},
    {"engine"},
    {"manage"},
    {"server"},
    {"cli", "__main__"},
]
#: Only these packages may import these libraries (by top-level name).
CONFINED = {
    "llama_cpp": "runtime",
    "faster_whisper": "runtime",
    "piper": "runtime",
    "fastapi": "server",
    "starlette": "server",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["claracore", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere, except under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _import_nodes(ast.Module(body=[child])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node)


@functools.cache
def imports(module: str) -> set[str]:
    """What `module` imports: claracore modules by dotted name, other libraries by top-level name."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:  # relative: from .x import y
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, or a name in base
    return {_owner(n) if n == "claracore" or n.startswith("claracore.") else n.split(".")[0] for n in names}


def _owner(name: str) -> str:
    """The module a dotted name lives in: itself when it is one, else the nearest enclosing one."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


@functools.cache
def graph() -> dict[str, set[str]]:
    return {m: {i for i in imports(m) if i.startswith("claracore") and i != m} for m in MODULES}


def _part(module: str) -> str:
    """The top-level part a module belongs to: `claracore.manage.planner.fit` -> `manage`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer(module: str) -> int:
    part = _part(module)
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i
    raise AssertionError(f"{module}: '{part}' is in no layer; place it in tests/unit/test_layers.py LAYERS")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each a cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_package() -> None:
    """The checks below are only as good as the scan: it must find modules and their imports."""
    assert {"claracore.engine", "claracore.runtime.llm", "claracore.server.app"} <= set(MODULES)
    assert "llama_cpp" in imports("claracore.runtime.native")
    assert "claracore.serving.generation" in imports("claracore.engine")
    assert "claracore.runtime.native" in imports("claracore.hardware.doctor")  # inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    cycles = _cycles(graph())
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_libraries_are_imported_by_their_one_package_only(library: str) -> None:
    owner = CONFINED[library]
    offenders = sorted(m for m in MODULES if library in imports(m) and _part(m) != owner)
    assert offenders == [], f"{library} may be imported only under claracore/{owner}/: {offenders}"


def test_imports_go_down_the_layers() -> None:
    upward = sorted(
        f"{m} -> {i}"
        for m, targets in graph().items()
        if m != "claracore"  # the package facade: its public names load lazily, from any layer
        for i in targets
        if i != "claracore" and _layer(i) > _layer(m)
    )
    assert upward == [], "imports that go up a layer: " + ", ".join(upward)


def test_routes_do_not_import_each_other() -> None:
    routes = {m for m in MODULES if m.startswith("claracore.server.routes.")}
    crossing = sorted(f"{m} -> {i}" for m in routes for i in graph()[m] if i in routes)
    assert crossing == [], f"a route module imports another: {crossing}"
