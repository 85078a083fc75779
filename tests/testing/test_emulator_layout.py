"""The emulator's module layout, read from its source (AST, nothing imported): no import circles, the two
services never import each other, and only the composition points import a service from the shared part."""

from __future__ import annotations

import ast
from pathlib import Path

import airflow_provider_buddy.testing as package

ROOT = Path(package.__file__).parent
PREFIX = "airflow_provider_buddy.testing"
SERVICES = ("buddy", "gorules")
COMPOSERS = {
    "server": {f"{service}.{part}" for service in SERVICES for part in ("app", "control", "mixin", "state")},
    "scenario": {"buddy.specs", "gorules.specs"},
    "__init__": {"buddy.specs"},  # the public API re-exports Buddy's specs
}
"""The shared modules that compose the services, and the service modules each may import."""


def modules() -> dict[str, Path]:
    """Module names relative to the package ("server", "buddy.state", "__init__") -> their files."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules a file imports anywhere (top level, in functions, under TYPE_CHECKING)."""

    def relative(name: str) -> str | None:
        if name == PREFIX:
            return "__init__"
        short = name.removeprefix(PREFIX + ".")
        return short if name.startswith(PREFIX + ".") and short in known else None

    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {relative(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            for alias in node.names:  # "from pkg import module" imports the module, "from module import name" the module
                found.add(relative(f"{node.module}.{alias.name}") or relative(node.module))
    return {module for module in found if module is not None}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, set(found)) - {name} for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return result


def service_of(module: str) -> str | None:
    head = module.split(".")[0]
    return head if head in SERVICES else None


def test_no_module_imports_one_that_imports_it_back() -> None:
    edges = graph()
    assert {"server", "scenario", "control", "_routing", "_core", "buddy.state", "gorules.state"} <= set(edges)
    assert cycles(edges) == []


def test_the_services_never_import_each_other() -> None:
    for module, targets in graph().items():
        mine = service_of(module)
        if mine is not None:
            assert {t for t in targets if service_of(t) not in (None, mine)} == set(), module


def test_only_the_composition_points_import_a_service() -> None:
    for module, targets in graph().items():
        if service_of(module) is None:
            assert {t for t in targets if service_of(t) is not None} <= COMPOSERS.get(module, set()), module


def test_the_checks_see_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
