"""
Executions and their state machine, derived lazily from the emulated clock.

Nothing ticks in the background: every read first calls :func:`settle`, which moves an execution as far
as the clock allows (ENQUEUED -> INPROGRESS -> each action in turn -> a final status), stopping at actions
that wait for a person. Approval, cancel and retry are explicit transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_buddy.testing.scenario import WAIT_TYPES, ActionSpec, PipelineSpec, VariableSpec

FINISHED = frozenset({"SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED"})
WAITING = frozenset(WAIT_TYPES.values())
PRIORITIES = ("LOW", "NORMAL", "HIGH")
OPERATIONS = ("CANCEL", "RETRY", "APPLY", "APPLY_VARIABLES", "RUN_DELAYED")
TOKEN_OWNER_ID = 1
"""Member id of the token's owner: creator of API runs and approver through the API."""
BUDDY_USER_ID = 2
"""Member id of the person using Buddy's UI: creator of clicked runs and approver in the UI."""


class ApiError(Exception):
    """
    An API error the emulator answers as ``{"errors": [{"message": ...}]}``.

    :param status: the HTTP status.
    :param message: the error message.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RunOptions:
    """
    The validated body of a run request.

    :param comment: the run's comment.
    :param priority: LOW, NORMAL or HIGH.
    :param refresh: deploy from scratch.
    :param clear_cache: clear the cache before running.
    :param branch: the branch to run (at most one of branch, tag and pull_request).
    :param tag: the tag to run.
    :param pull_request: the pull request to run.
    :param to_revision: the revision to deploy.
    :param from_revision: the revision deployed before.
    :param variables: variables passed to the run.
    :param actions_to_run: ids of the only actions to run, or None for all.
    :param delay_until: when the run may start (Unix seconds), or None.
    :param environment: the environment to run in.
    :param package_version: the package version ("name:version").
    """

    comment: str = ""
    priority: str = "NORMAL"
    refresh: bool = False
    clear_cache: bool = False
    branch: str | None = None
    tag: str | None = None
    pull_request: str | None = None
    to_revision: str | None = None
    from_revision: str | None = None
    variables: list[VariableSpec] = field(default_factory=list)
    actions_to_run: list[int] | None = None
    delay_until: float | None = None
    environment: str | None = None
    package_version: str | None = None


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
    if execution.status == "ENQUEUED":
        if now < execution.start_at:
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
            if wait_status == "WAITING_FOR_VARIABLES":
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
    if execution.status != "ENQUEUED" and run is not None:
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
) -> None:
    """
    Approve the waiting action (APPLY) or hand it its variables (APPLY_VARIABLES).

    :param execution: the execution.
    :param now: the emulated time.
    :param operation: "APPLY" or "APPLY_VARIABLES"; None accepts whichever the action waits for.
    :param variables: the variables for APPLY_VARIABLES (None: the action's defaults).
    :param approve_action_id: None, or the waiting action execution's id or its action's id.
    :param approver_id: the member approving.
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
    if operation == "APPLY" and run.status != "WAITING_FOR_APPLY":
        raise ApiError(400, f'Action "{run.spec.name}" waits for variables: use APPLY_VARIABLES')
    if operation == "APPLY_VARIABLES" and run.status != "WAITING_FOR_VARIABLES":
        raise ApiError(400, f'Action "{run.spec.name}" waits for approval: use APPLY')
    if run.status == "WAITING_FOR_VARIABLES":
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
    """Start a scheduled (ENQUEUED) run now."""
    settle(execution, now)
    if execution.status != "ENQUEUED":
        raise ApiError(400, "Execution is not waiting to start")
    execution.start_at = now
    settle(execution, now)


# --- validation of request bodies -------------------------------------------------------------------


def _ref_name(body: dict[str, Any], key: str, field_name: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(field_name), str) or not value[field_name]:
        raise ApiError(400, f'{key} must be an object with a non-empty "{field_name}" string')
    name: str = value[field_name]
    return name


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def parse_variables(value: Any, key: str = "variables") -> list[VariableSpec]:
    """Validate a list of ``{"key", "value", "encrypted"}`` objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{key} must be a list")
    result = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object")
        name = item.get("key")
        if not isinstance(name, str) or not name:
            raise ApiError(400, f"{where}.key must be a non-empty string")
        text = item.get("value", "")
        if not isinstance(text, str):
            raise ApiError(400, f"{where}.value must be a string")
        encrypted = item.get("encrypted", False)
        if not isinstance(encrypted, bool):
            raise ApiError(400, f"{where}.encrypted must be a boolean")
        result.append(VariableSpec(key=name, value=text, encrypted=encrypted))
    return result


def parse_datetime(value: Any, key: str) -> float:
    """Parse an ISO-8601 date-time (naive means UTC) into Unix seconds."""
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be an ISO-8601 date-time string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{key} is not a valid ISO-8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_run_options(body: Any, pipeline: PipelineSpec) -> RunOptions:
    """Validate a run request's body against the pipeline; unknown fields are ignored."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    refs = [key for key in ("branch", "tag", "pull_request") if body.get(key) is not None]
    if len(refs) > 1:
        raise ApiError(400, f"Only one of branch, tag or pull_request may be given, got {', '.join(refs)}")
    priority = body.get("priority") or "NORMAL"
    if priority not in PRIORITIES:
        raise ApiError(400, f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
    actions_to_run = body.get("actions_to_run")
    if actions_to_run is not None:
        if not isinstance(actions_to_run, list) or not actions_to_run:
            raise ApiError(400, "actions_to_run must be a non-empty list of action ids")
        for action_id in actions_to_run:
            if not isinstance(action_id, int) or isinstance(action_id, bool):
                raise ApiError(400, f"actions_to_run must hold action ids (integers), got {action_id!r}")
            if pipeline.action(action_id) is None:
                raise ApiError(400, f"Action {action_id} not found in pipeline {pipeline.id}")
    delay = body.get("delay_until")
    comment = _optional_str(body, "comment")
    return RunOptions(
        comment=comment or "",
        priority=priority,
        refresh=_bool(body, "refresh"),
        clear_cache=_bool(body, "clear_cache"),
        branch=_ref_name(body, "branch", "name"),
        tag=_ref_name(body, "tag", "name"),
        pull_request=_ref_name(body, "pull_request", "name"),
        to_revision=_ref_name(body, "to_revision", "revision"),
        from_revision=_ref_name(body, "from_revision", "revision"),
        variables=parse_variables(body.get("variables")),
        actions_to_run=list(actions_to_run) if actions_to_run is not None else None,
        delay_until=parse_datetime(delay, "delay_until") if delay is not None else None,
        environment=_optional_str(body, "environment"),
        package_version=_optional_str(body, "package_version"),
    )
