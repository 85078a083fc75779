"""Buddy execution statuses and the groups this provider reads them in (:mod:`.status`).

The API documents the status names but not their meaning; the reading used here is the project's
(see the README). Statuses the API adds later are kept as plain strings and read as "still going".
"""

from __future__ import annotations

from enum import Enum

from airflow_provider_buddy.models.status import StatusGroup, WaitKind

__all__ = [
    "ExecutionStatus",
    "status_group",
    "wait_kind",
]


class ExecutionStatus(str, Enum):
    """Every status name Buddy documents for executions and action executions."""

    INPROGRESS = "INPROGRESS"
    ENQUEUED = "ENQUEUED"
    TERMINATED = "TERMINATED"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    INITIAL = "INITIAL"
    NOT_EXECUTED = "NOT_EXECUTED"
    SKIPPED = "SKIPPED"
    TERMINATING = "TERMINATING"
    WAITING_FOR_APPLY = "WAITING_FOR_APPLY"
    WAITING_FOR_VARIABLES = "WAITING_FOR_VARIABLES"
    WAITING_FOR_SETTABLE_VARIABLES = "WAITING_FOR_SETTABLE_VARIABLES"
    WAITING_FOR_VT_SESSION = "WAITING_FOR_VT_SESSION"


_GROUPS: dict[str, StatusGroup] = {
    "SUCCESSFUL": StatusGroup.SUCCESS,
    "FAILED": StatusGroup.FAILURE,
    "TERMINATED": StatusGroup.CANCELLED,
    "SKIPPED": StatusGroup.SKIPPED,
    "INITIAL": StatusGroup.RUNNING,
    "ENQUEUED": StatusGroup.RUNNING,
    "INPROGRESS": StatusGroup.RUNNING,
    "TERMINATING": StatusGroup.RUNNING,
    "NOT_EXECUTED": StatusGroup.RUNNING,
    "WAITING_FOR_APPLY": StatusGroup.WAITING_FOR_PERSON,
    "WAITING_FOR_VARIABLES": StatusGroup.WAITING_FOR_PERSON,
    "WAITING_FOR_SETTABLE_VARIABLES": StatusGroup.WAITING_FOR_PERSON,
    "WAITING_FOR_VT_SESSION": StatusGroup.WAITING_FOR_PERSON,
}

_WAITS: dict[str, WaitKind] = {
    "WAITING_FOR_APPLY": WaitKind.APPROVAL,
    "WAITING_FOR_VARIABLES": WaitKind.VARIABLES,
    "WAITING_FOR_SETTABLE_VARIABLES": WaitKind.VARIABLES,
    "WAITING_FOR_VT_SESSION": WaitKind.VISUAL_TEST,
}


def status_group(status: str | None) -> StatusGroup:
    """
    Read a status name into its group; an unknown name is ``UNKNOWN`` (treat it as still going).

    :param status: the status string as Buddy sent it.
    """
    if status is None:
        return StatusGroup.UNKNOWN
    return _GROUPS.get(status.upper(), StatusGroup.UNKNOWN)


def wait_kind(status: str | None) -> WaitKind | None:
    """
    What a person is asked for when ``status`` is a waiting status, else None.

    :param status: the status string as Buddy sent it.
    """
    if status is None:
        return None
    return _WAITS.get(status.upper())
