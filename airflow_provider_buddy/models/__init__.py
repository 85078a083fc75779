"""Typed models of the APIs this provider talks to."""

from __future__ import annotations

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

__all__ = [
    "Action",
    "ActionExecution",
    "ActionLogs",
    "Execution",
    "ExecutionStatus",
    "Member",
    "Pipeline",
    "RunPipelineRequest",
    "StatusGroup",
    "Variable",
    "WaitKind",
    "Workspace",
    "status_group",
    "variables_from",
    "wait_kind",
    # GoRules BRMS
    "DeployResult",
    "EnvironmentRef",
    "Job",
    "Release",
    "ReleaseRef",
    "Run",
    "UserRef",
    "run_status_group",
]
