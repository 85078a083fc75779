"""Typed models of the APIs this provider talks to.

Names are loaded on first use (PEP 562), so importing one submodule — as every DAG file does through
the operators — does not build every pydantic model of both services.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    **dict.fromkeys(
        (
            "Action",
            "ActionExecution",
            "ActionLogs",
            "Execution",
            "Member",
            "Pipeline",
            "RunPipelineRequest",
            "Variable",
            "Workspace",
            "variables_from",
        ),
        "buddy",
    ),
    **dict.fromkeys(("ExecutionStatus", "StatusGroup", "WaitKind", "status_group", "wait_kind"), "buddy_status"),
    **dict.fromkeys(("DeployResult", "EnvironmentRef", "Job", "Release", "ReleaseRef", "Run", "UserRef", "run_status_group"), "gorules"),
}

__all__ = [
    "Action",
    "ActionExecution",
    "ActionLogs",
    "DeployResult",
    "EnvironmentRef",
    "Execution",
    "ExecutionStatus",
    "Job",
    "Member",
    "Pipeline",
    "Release",
    "ReleaseRef",
    "Run",
    "RunPipelineRequest",
    "StatusGroup",
    "UserRef",
    "Variable",
    "WaitKind",
    "Workspace",
    "run_status_group",
    "status_group",
    "variables_from",
    "wait_kind",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


if TYPE_CHECKING:
    from airflow_provider_buddy.models.buddy import (
        Action,
        ActionExecution,
        ActionLogs,
        Execution,
        Member,
        Pipeline,
        RunPipelineRequest,
        Variable,
        Workspace,
        variables_from,
    )
    from airflow_provider_buddy.models.buddy_status import ExecutionStatus, StatusGroup, WaitKind, status_group, wait_kind
    from airflow_provider_buddy.models.gorules import (
        DeployResult,
        EnvironmentRef,
        Job,
        Release,
        ReleaseRef,
        Run,
        UserRef,
        run_status_group,
    )
