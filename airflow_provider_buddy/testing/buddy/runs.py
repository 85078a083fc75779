"""
Executions and their state machine, derived lazily from the emulated clock.

Nothing ticks in the background: every read first calls :func:`settle`, which moves an execution as far
as the clock allows (ENQUEUED -> INPROGRESS -> each action in turn -> a final status), stopping at actions
that wait for a person. Approval, cancel and retry are explicit transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_buddy.testing._core import ApiError
from airflow_provider_buddy.testing.buddy.options import RunOptions
from airflow_provider_buddy.testing.buddy.specs import VARIABLE_WAITS, WAIT_TYPES, ActionSpec, PipelineSpec, VariableSpec

FINISHED = frozenset({"SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED", "NOT_EXECUTED"})
WAITING = frozenset(WAIT_TYPES.values())
OPERATIONS = ("CANCEL", "RETRY", "APPLY", "APPLY_VARIABLES", "SET_VARIABLES", "RUN_DELAYED", "APPROVE_VT")
"""Every operation https://buddy.works/docs/api/executions/cancel-retry-approve lists."""
NOT_STARTED = frozenset({"ENQUEUED", "INITIAL"})
"""What a run shows before it starts (a scheduled run's status is not documented: the emulator plays either)."""
ANSWERS: dict[str, tuple[str, ...]] = {
    "WAITING_FOR_APPLY": ("APPLY",),
    "WAITING_FOR_VARIABLES": ("APPLY_VARIABLES",),
    "WAITING_FOR_SETTABLE_VARIABLES": ("SET_VARIABLES",),
    "WAITING_FOR_VT_SESSION": ("APPROVE_VT",),
}
"""The operations each wait takes by default (the settable one is configurable: ``settable_variables_operation``)."""
TOKEN_OWNER_ID = 1
"""Member id of the token's owner: creator of API runs and approver through the API."""
BUDDY_USER_ID = 2
"""Member id of the person using Buddy's UI: creator of clicked runs and approver in the UI."""


@dataclass
class ActionRun:
    """
    One action's execution within a run.

    :param spec: the action.
    :param action_execution_id: its 24-hex id.
    """

    spec: ActionSpec
    action_execution_id: str
    status: str = "INITIAL"
    start: float | None = None
    finish: float | None = None
    error_message: str | None = None
    approver_id: int | None = None
    approval_date: float | None = None
    passed_variables: list[VariableSpec] = field(default_factory=list)

    def reset(self) -> None:
        """Back to INITIAL, as before it ran."""
        self.status = "INITIAL"
        self.start = self.finish = self.approval_date = None
        self.error_message = None
        self.approver_id = None
        self.passed_variables = []


@dataclass
class Execution:
    """
    One run of a pipeline.

    :param id: the execution's numeric id.
    :param object_id: its 24-hex id (as in its html_url).
    :param project: the project's name.
    :param pipeline: the pipeline as defined when the run started.
    :param options: the run's request.
    :param triggered_on: "API" or "CLICK".
    :param creator_id: the member who started it.
    :param created: when it was created (emulated Unix seconds).
    :param start_at: when it leaves ENQUEUED.
    :param actions: its action executions, in order.
    :param outcome: how the current attempt ends.
    :param fail_index: index in ``actions`` of the action that fails, or None.
    """

    id: int
    object_id: str
    project: str
    pipeline: PipelineSpec
    options: RunOptions
    triggered_on: str
    creator_id: int
    created: float
    start_at: float
    actions: list[ActionRun]
    outcome: str
    fail_index: int | None
    status: str = "ENQUEUED"
    start_date: float | None = None
    finish_date: float | None = None
    cursor: int = 0
    cursor_time: float = 0.0
    retries: int = 0

    @property
    def finished(self) -> bool:
        """True once the execution reached a final status."""
        return self.status in FINISHED

    def current(self) -> ActionRun | None:
        """The action execution the run is at, or None."""
        return self.actions[self.cursor] if self.cursor < len(self.actions) else None


def fail_index(actions: list[ActionRun], outcome: str, fail_action: int | None, first: int = 0) -> int | None:
    """Index of the action that fails for ``outcome`` (None unless FAILED), at or after ``first``."""
    if outcome != "FAILED":
        return None
    for index in range(first, len(actions)):
        if fail_action is not None and actions[index].spec.id == fail_action:
            return index
    candidates = [i for i in range(first, len(actions)) if not actions[i].spec.waits]
    return candidates[-1] if candidates else None


def _finish(execution: Execution, status: str, at: float) -> None:
    execution.status = status
    execution.finish_date = at
    for run in execution.actions:
        if run.status == "INITIAL":
            run.status = "NOT_EXECUTED"


def settle(execution: Execution, now: float) -> None:
    """Move the execution forward to what the clock says it has reached by ``now``."""
    if execution.finished:
        return
    if execution.status in NOT_STARTED:
        if now < execution.start_at:
            return
        if execution.outcome == "NOT_EXECUTED":  # ends without running any action
            _finish(execution, "NOT_EXECUTED", execution.start_at)
            return
        execution.status = "INPROGRESS"
        if execution.start_date is None:
            execution.start_date = execution.start_at
        execution.cursor_time = execution.start_at
    while (run := execution.current()) is not None:
        if run.status == "INITIAL":
            run.status = "INPROGRESS"
            run.start = execution.cursor_time
        wait_status = WAIT_TYPES.get(run.spec.type)
        if wait_status is not None:
            run.status = wait_status
            if wait_status in VARIABLE_WAITS:
                run.passed_variables = list(run.spec.variables)  # what the prompt asks for, with defaults
            shown_on_execution = execution.pipeline.wait_shown_on == "execution"
            execution.status = wait_status if shown_on_execution else "INPROGRESS"
            return
        end = execution.cursor_time + run.spec.duration
        if now < end:
            return
        run.finish = end
        if execution.cursor == execution.fail_index:
            run.status = "FAILED"
            run.error_message = execution.pipeline.failure_message
            _finish(execution, "FAILED", end)
            return
        run.status = "SUCCESSFUL"
        execution.cursor += 1
        execution.cursor_time = end
    _finish(execution, execution.outcome, execution.cursor_time)


def cancel(execution: Execution, now: float) -> None:
    """Terminate a running, waiting or enqueued execution."""
    settle(execution, now)
    if execution.finished:
        raise ApiError(400, "Execution has already finished")
    run = execution.current()
    if execution.status not in NOT_STARTED and run is not None:
        run.status = "TERMINATED"
        run.finish = now
    _finish(execution, "TERMINATED", now)


def retry(execution: Execution, now: float) -> None:
    """Run a FAILED or TERMINATED execution again from the action that failed or was terminated."""
    settle(execution, now)
    if execution.status not in ("FAILED", "TERMINATED"):
        raise ApiError(400, f"Only a failed or terminated execution can be retried (status: {execution.status})")
    first = next(
        (i for i, run in enumerate(execution.actions) if run.status not in ("SUCCESSFUL", "SKIPPED")),
        len(execution.actions),
    )
    for run in execution.actions[first:]:
        run.reset()
    pipeline = execution.pipeline
    execution.outcome = pipeline.retry_outcome
    execution.fail_index = fail_index(execution.actions, pipeline.retry_outcome, pipeline.fail_action, first)
    execution.status = "INPROGRESS"
    execution.finish_date = None
    execution.start_at = min(execution.start_at, now)
    if execution.start_date is None:
        execution.start_date = now
    execution.cursor = first
    execution.cursor_time = now
    execution.retries += 1
    settle(execution, now)


def _merge_variables(asked: list[VariableSpec], given: list[VariableSpec]) -> list[VariableSpec]:
    merged = {variable.key: variable for variable in asked}
    for variable in given:
        merged[variable.key] = variable
    return list(merged.values())


def approve(
    execution: Execution,
    now: float,
    operation: str | None,
    variables: list[VariableSpec] | None,
    approve_action_id: Any,
    approver_id: int,
    answers: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """
    Answer the waiting action: approve it (APPLY), hand it its variables (APPLY_VARIABLES, SET_VARIABLES) or approve
    its visual-test session (APPROVE_VT).

    :param execution: the execution.
    :param now: the emulated time.
    :param operation: the operation sent; None accepts whichever the action waits for.
    :param variables: the variables for a variables wait (None: the action's defaults).
    :param approve_action_id: None, or the waiting action execution's id or its action's id.
    :param approver_id: the member approving.
    :param answers: the operations each wait takes (default :data:`ANSWERS`).
    """
    settle(execution, now)
    run = execution.current()
    if execution.finished or run is None or run.status not in WAITING:
        raise ApiError(400, "Execution is not waiting for approval")
    if approve_action_id is not None and str(approve_action_id) not in (
        run.action_execution_id,
        str(run.spec.id),
    ):
        raise ApiError(
            400,
            f"approve_action_id {approve_action_id} does not match the waiting action "
            f"(action execution {run.action_execution_id}, action {run.spec.id})",
        )
    taken = (answers or ANSWERS).get(run.status, ())
    if operation is not None and operation not in taken:
        raise ApiError(400, f'Action "{run.spec.name}" is {run.status}: use {" or ".join(taken)}, not {operation}')
    if run.status in VARIABLE_WAITS:
        run.passed_variables = _merge_variables(run.spec.variables, variables or [])
    run.status = "SUCCESSFUL"
    run.finish = now
    run.approver_id = approver_id
    run.approval_date = now
    execution.status = "INPROGRESS"
    execution.cursor += 1
    execution.cursor_time = now
    settle(execution, now)


def run_delayed(execution: Execution, now: float) -> None:
    """Start a scheduled (ENQUEUED or INITIAL, not started) run now."""
    settle(execution, now)
    if execution.status not in NOT_STARTED:
        raise ApiError(400, "Execution is not waiting to start")
    execution.start_at = now
    settle(execution, now)
