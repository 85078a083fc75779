"""The package's shape: no import circles, nothing service-neutral importing a service, the public paths users write."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_buddy"
NAME = "airflow_provider_buddy"

NEUTRAL = [
    "exceptions",
    "hooks._base",
    "hooks._connection",
    "hooks._http",
    "models.status",
    "models.validation",
    "operators.hitl",
    "triggers._base",
    "triggers._poller",
    "triggers._task_xcoms",
    "triggers.hitl",
    "utils.arguments",
    "utils.backoff",
    "utils.cancelling",
    "utils.reattach",
    "utils.sensor_timeout",
    "utils.waiting",
]
"""What both services share: none of these may import a Buddy or GoRules module."""

PUBLIC = [
    "hooks.buddy:BuddyHook",
    "hooks.gorules:GoRulesHook",
    "operators.buddy:BuddyRunPipelineOperator",
    "operators.buddy:BuddyCancelExecutionOperator",
    "operators.buddy:BuddyRetryExecutionOperator",
    "operators.buddy:BuddyApproveExecutionOperator",
    "operators.buddy:BuddyClearPipelineCacheOperator",
    "operators.approval:BuddyApprovalOperator",
    "operators.hitl:HeldHITLBranchOperator",
    "operators.gorules:GoRulesDeployReleaseOperator",
    "operators.gorules:GoRulesCancelRunOperator",
    "sensors.buddy:BuddyExecutionSensor",
    "sensors.gorules:GoRulesRunSensor",
    "triggers.buddy:BuddyExecutionTrigger",
    "triggers.gorules:GoRulesRunTrigger",
    "triggers.hitl:HeldHITLTrigger",
    "links:BuddyExecutionLink",
    "exceptions:BuddyExecutionFailedError",
    "exceptions:GoRulesRunFailedError",
    "models:Execution",
    "models:Run",
    "models:StatusGroup",
    "testing:BuddyEmulator",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, runtime_top_level_only: bool) -> set[str]:
    """The package modules ``path`` imports (at its top level outside ``if TYPE_CHECKING:``, or anywhere)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    nodes = tree.body if runtime_top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(NAME):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(NAME))
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {name for name in found if name in modules and name != module_name(path)}


def test_no_import_circles() -> None:
    graph = {module_name(p): imports(p, runtime_top_level_only=True) for p in PACKAGE.rglob("*.py")}
    graph = {module: {m for m in deps if m not in _parents(module)} for module, deps in graph.items()}
    circles: list[list[str]] = []

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            circles.append([*trail[trail.index(module) :], module])
            return
        for dep in sorted(graph.get(module, ())):
            visit(dep, [*trail, module])

    for module in sorted(graph):
        visit(module, [])
    assert not circles, f"import circles: {circles[:5]}"


def _parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@pytest.mark.parametrize("module", NEUTRAL)
def test_shared_modules_import_no_service(module: str) -> None:
    path = PACKAGE.joinpath(*module.split(".")).with_suffix(".py")
    services = {m for m in imports(path, runtime_top_level_only=False) if m != NAME and ("buddy" in m.split(".")[-1] or "gorules" in m)}
    assert not services, f"{module} is shared by both services but imports {sorted(services)}"


@pytest.mark.parametrize("where", PUBLIC)
def test_public_import_paths(where: str) -> None:
    module, name = where.split(":")
    assert getattr(importlib.import_module(f"{NAME}.{module}"), name).__name__ == name


def test_the_package_root_holds_no_loose_service_or_helper_modules() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "demo.py", "exceptions.py", "get_provider_info.py", "links.py"]
