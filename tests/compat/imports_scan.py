"""Reading what a source tree imports, without importing it (shared by the public-API and dependency checks)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_provider_buddy"
EXAMPLE_DAGS = ROOT / "example_dags"


@dataclass(frozen=True)
class Imported:
    """One imported name: ``from module import name`` (name ``""`` for ``import module``)."""

    path: Path
    line: int
    module: str
    name: str
    type_checking_only: bool

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, path: Path, type_checking: bool) -> Iterator[Imported]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, path, True)
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, path, type_checking)
            continue
        yield from _walk_stmt(child, path, type_checking)


def _walk_stmt(node: ast.AST, path: Path, type_checking: bool) -> Iterator[Imported]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield Imported(path, node.lineno, alias.name, "", type_checking)
    elif isinstance(node, ast.ImportFrom):
        if node.level == 0 and node.module:
            for alias in node.names:
                yield Imported(path, node.lineno, node.module, alias.name, type_checking)
    elif isinstance(node, ast.Call):
        # importlib.import_module("x.y") / __import__("x.y") with a literal name
        func = node.func
        named = (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
            isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}
        )
        if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            yield Imported(path, node.lineno, node.args[0].value, "", type_checking)
    yield from _walk(node, path, type_checking)


def imports_in(*roots: Path) -> list[Imported]:
    """Every import (also lazy ones inside functions) in the ``.py`` files under ``roots``."""
    found: list[Imported] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            found.extend(_walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), path, False))
    return found
