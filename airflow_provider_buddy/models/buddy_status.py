"""Buddy execution statuses and the groups this provider reads them in (:mod:`.status`), and the one answer to each
wait for a person (:func:`approve_operations`).

The API documents the status names but not their meaning; the reading used here is the project's
(see the README). Statuses the API adds later are kept as plain strings and read as "still going".
"""

from __future__ import annotations

from enum import Enum

from airflow_provider_buddy.models.status import StatusGroup, WaitKind

__all__ = [
    "APPROVE_OPERATIONS",
    "ExecutionStatus",
    "approve_operations",
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
    # Not documented; read as "ended without running" (the report's reading: Buddy sets it on the actions a run never
    # reached). Grouped with SKIPPED so that a wait ends on it (it was read as still going, so a wait lasted until its
    # timeout); ``skipped_is_success`` covers both.
    "NOT_EXECUTED": StatusGroup.SKIPPED,
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


APPROVE_OPERATIONS: dict[str, tuple[str, ...]] = {
    # https://buddy.works/docs/api/executions/cancel-retry-approve lists the operations (CANCEL, RETRY, APPLY,
    # APPLY_VARIABLES, SET_VARIABLES, RUN_DELAYED, APPROVE_VT) but pairs none of them with a wait status. The pairings:
    "WAITING_FOR_APPLY": ("APPLY",),  # a "Wait for approval" action (type WAIT_FOR_APPLY): the names match
    "WAITING_FOR_VARIABLES": ("APPLY_VARIABLES",),  # "Pass arguments" (WAIT_FOR_VARIABLES): "variables Required if APPLY_VARIABLES"
    # Settable variables: SET_VARIABLES ("the list of variables to set as parameters") is the likeliest answer; a 4xx to it
    # is followed by APPLY_VARIABLES, the older operation, so either reading of the service works.
    "WAITING_FOR_SETTABLE_VARIABLES": ("SET_VARIABLES", "APPLY_VARIABLES"),
    # "Approve Visual Tests Session" (action type APPROVE_VT, https://buddy.works/docs/api/actions/add/approve-vt)
    "WAITING_FOR_VT_SESSION": ("APPROVE_VT",),
}
"""The operation that answers each wait for a person, then the ones tried when Buddy refuses it (a 4xx). The one place
every approval (the approve operator, ``on_approval="approve"`` waits, the Airflow approval gate) chooses it."""


def approve_operations(status: str | None) -> tuple[str, ...]:
    """
    The ``PATCH .../executions/{id}`` operations that answer a wait in ``status``, preferred first (see
    :data:`APPROVE_OPERATIONS`); ``("APPLY",)`` for a status that is not a known wait.

    :param status: the waiting status (the waiting action's, else the execution's).
    """
    return APPROVE_OPERATIONS.get((status or "").upper(), ("APPLY",))


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
