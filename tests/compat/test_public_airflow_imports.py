"""The provider (and its example DAGs) import Airflow only through public APIs: ``airflow.sdk``, the common.compat
provider's ``sdk`` module, and the standard provider's public modules. Each internal import kept is listed below with
the reason no public one exists; a new one fails this test until it is replaced or listed here with its reason."""

from __future__ import annotations

import re

from tests.compat.imports_scan import EXAMPLE_DAGS, PACKAGE, Imported, imports_in

# (module, name) -> why it is kept. Checked against Airflow 3.1.8 and 3.3.2: no airflow.sdk or common.compat name.
KEPT_INTERNAL: dict[tuple[str, str], str] = {
    ("airflow.triggers.base", "BaseTrigger"): "the documented trigger base class; no airflow.sdk/common.compat alias in 3.1-3.3",
    ("airflow.triggers.base", "TriggerEvent"): "the documented trigger event; no airflow.sdk/common.compat alias in 3.1-3.3",
    ("airflow.triggers.base", "TaskSuccessEvent"): "ends a task from the triggerer; no airflow.sdk/common.compat alias in 3.1-3.3",
    ("airflow.triggers.base", "StartTriggerArgs"): "start_from_trigger's argument type; no airflow.sdk/common.compat alias in 3.1-3.3",
    ("airflow.sdk.execution_time.task_runner", "RuntimeTaskInstance"): (
        "get_task_states: no public API lets a trigger read its task's state (on_kill reassignment guard); "
        "the standard provider's WorkflowTrigger makes the same call"
    ),
}

PUBLIC_MODULES = {
    "airflow.sdk",  # the Task SDK's top-level names (its submodules are implementation)
    "airflow.providers.common.compat.sdk",  # one name for what moved between Airflow versions
}
# the standard provider's operators, sensors, triggers, hooks and decorators (not its utils or version_compat)
PUBLIC_PREFIX = re.compile(r"^airflow\.providers\.standard\.(operators|sensors|triggers|hooks|decorators)(\.[a-z][a-z0-9_]*)*$")


def _is_airflow(module: str) -> bool:
    return module == "airflow" or module.startswith("airflow.")


def _public(item: Imported) -> bool:
    if item.module in PUBLIC_MODULES:
        return not item.name.startswith("_")
    return bool(PUBLIC_PREFIX.match(item.module)) and not item.name.startswith("_")


def _airflow_imports() -> list[Imported]:
    return [item for item in imports_in(PACKAGE, EXAMPLE_DAGS) if _is_airflow(item.module)]


def test_every_airflow_import_is_public_or_listed_with_its_reason() -> None:
    offending = [
        f"{item.where()}: from {item.module} import {item.name or '*'}"
        for item in _airflow_imports()
        if not _public(item) and (item.module, item.name) not in KEPT_INTERNAL
    ]
    assert not offending, (
        "non-public Airflow imports (use airflow.sdk, airflow.providers.common.compat.sdk or a standard provider "
        "module; if none exists, add it to KEPT_INTERNAL with the reason):\n" + "\n".join(offending)
    )


def test_the_kept_list_has_no_stale_entries() -> None:
    used = {(item.module, item.name) for item in _airflow_imports()}
    assert not set(KEPT_INTERNAL) - used, f"no longer imported, drop from KEPT_INTERNAL: {sorted(set(KEPT_INTERNAL) - used)}"


def test_the_scan_sees_lazy_type_checking_and_dynamic_imports() -> None:
    """The scan itself: imports inside functions and TYPE_CHECKING blocks count too."""
    found = {(item.module, item.name, item.type_checking_only) for item in _airflow_imports()}
    assert ("airflow.sdk.execution_time.task_runner", "RuntimeTaskInstance", False) in found  # inside a method
    assert ("airflow.triggers.base", "StartTriggerArgs", True) in found  # a TYPE_CHECKING import
