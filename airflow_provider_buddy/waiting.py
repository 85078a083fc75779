"""The one decision every waiter makes: given an execution's state and the approval policy, keep
waiting, approve, or finish (and how). Used by the sensor's poke, the trigger and the operator's
synchronous wait alike. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from airflow_provider_buddy.models.buddy_status import StatusGroup, WaitKind

if TYPE_CHECKING:
    from airflow_provider_buddy.models.buddy import Execution

DEFAULT_LOG_TAIL = 50


class ApprovalPolicy(str, Enum):
    """What a waiter does when the execution stops for a person.

    ``wait``: keep waiting while someone answers in Buddy. ``succeed``: finish successfully at once,
    returning what it waits for, so the DAG can put its own gate next. ``fail``: fail, naming the
    waiting action. ``approve``: approve it (with ``approval_variables`` for a "pass arguments"
    prompt) and keep waiting.
    """

    WAIT = "wait"
    SUCCEED = "succeed"
    FAIL = "fail"
    APPROVE = "approve"

    @classmethod
    def parse(cls, value: Any, *, parameter: str = "on_approval") -> ApprovalPolicy:
        """Read a policy, with an error naming the parameter and the allowed values."""
        if isinstance(value, ApprovalPolicy):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"{parameter} must be one of {allowed}, got {value!r}") from None


class EventStatus(str, Enum):
    """The ``status`` of the one event a wait ends with."""

    SUCCESS = "success"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    ERROR = "error"


class Step(str, Enum):
    """What the waiter does next."""

    KEEP_WAITING = "keep_waiting"
    APPROVE = "approve"
    FINISH = "finish"


@dataclass(frozen=True)
class Decision:
    """
    The outcome of :func:`decide`.

    :param step: keep waiting, approve, or finish.
    :param status: the event status when finishing.
    :param message: what a person reads.
    :param waits_for: what the execution waits for, at a gate.
    :param waiting_action_execution_id: the waiting action execution, at a gate.
    :param waiting_action_name: its action's name.
    """

    step: Step
    status: EventStatus | None = None
    message: str = ""
    waits_for: WaitKind | None = None
    waiting_action_execution_id: str | None = None
    waiting_action_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def describe_execution(execution: Execution) -> str:
    """A short, human reference to the execution, with its link."""
    link = f" ({execution.html_url})" if execution.html_url else ""
    return f"Buddy execution {execution.id}{link}"


def decide(
    execution: Execution,
    policy: ApprovalPolicy,
    *,
    has_approval_variables: bool = False,
    approved_action_ids: frozenset[str] = frozenset(),
    skipped_is_success: bool = False,
) -> Decision:
    """
    Decide what to do about ``execution`` now.

    :param execution: the latest state read from Buddy.
    :param policy: what to do at a gate.
    :param has_approval_variables: whether ``approval_variables`` were given (for a variables prompt).
    :param approved_action_ids: action executions this waiter already approved (never approved twice).
    :param skipped_is_success: read a SKIPPED execution as success.
    """
    group = execution.status_group
    ref = describe_execution(execution)
    if group is StatusGroup.SUCCESS:
        return Decision(Step.FINISH, EventStatus.SUCCESS, f"{ref} succeeded")
    if group is StatusGroup.SKIPPED:
        if skipped_is_success:
            return Decision(Step.FINISH, EventStatus.SUCCESS, f"{ref} was skipped (read as success: skipped_is_success=True)")
        return Decision(Step.FINISH, EventStatus.SKIPPED, f"{ref} was skipped by Buddy (a newer run superseded it)")
    if group is StatusGroup.CANCELLED:
        return Decision(Step.FINISH, EventStatus.CANCELLED, f"{ref} was cancelled (status {execution.status})")
    if group is StatusGroup.FAILURE:
        failed = execution.failed_action
        where = f" at action {failed.name!r}" if failed is not None else ""
        error = f": {failed.error_message}" if failed is not None and failed.error_message else ""
        return Decision(Step.FINISH, EventStatus.FAILED, f"{ref} failed{where}{error}")
    if group is not StatusGroup.WAITING_FOR_PERSON:
        return Decision(Step.KEEP_WAITING)

    action = execution.waiting_action
    kind = execution.waits_for
    action_id = action.action_execution_id if action is not None else None
    action_name = action.name if action is not None else None

    def gate(step: Step, status: EventStatus | None, message: str) -> Decision:
        return Decision(step, status, message, kind, action_id, action_name)

    what = _what_it_waits_for(kind, action_name)
    if policy is ApprovalPolicy.WAIT:
        return gate(Step.KEEP_WAITING, None, f"{ref} waits for {what}; waiting for someone to answer in Buddy")
    if policy is ApprovalPolicy.SUCCEED:
        return gate(Step.FINISH, EventStatus.WAITING_FOR_APPROVAL, f"{ref} waits for {what}")
    if policy is ApprovalPolicy.FAIL:
        return gate(Step.FINISH, EventStatus.FAILED, f"{ref} stopped for {what}, and on_approval='fail'")
    # APPROVE
    if action_id is not None and action_id in approved_action_ids:
        return gate(Step.KEEP_WAITING, None, f"{ref}: {what} already approved; waiting for Buddy to move on")
    if action is not None and action.approval_date is not None:
        return gate(Step.KEEP_WAITING, None, f"{ref}: {what} already has an approval; waiting for Buddy to move on")
    if kind is WaitKind.VARIABLES and not has_approval_variables:
        return gate(
            Step.FINISH,
            EventStatus.ERROR,
            f"{ref} waits for {what}, but on_approval='approve' was given no approval_variables to answer it with",
        )
    if kind is WaitKind.VISUAL_TEST:
        return gate(Step.KEEP_WAITING, None, f"{ref} waits for {what}; a visual-test review cannot be approved through the API")
    return gate(Step.APPROVE, None, f"{ref} waits for {what}; approving (on_approval='approve')")


def _what_it_waits_for(kind: WaitKind | None, action_name: str | None) -> str:
    label = (
        {
            WaitKind.APPROVAL: "approval",
            WaitKind.VARIABLES: "variables (a 'pass arguments' prompt)",
            WaitKind.VISUAL_TEST: "a visual-test review",
        }.get(kind, "a person")
        if kind is not None
        else "a person"
    )
    return f"{label} at action {action_name!r}" if action_name else label


def event_payload(execution: Execution | None, decision: Decision, *, execution_id: int | None = None) -> dict[str, Any]:
    """The dict carried by the wait's one ``TriggerEvent`` (plain JSON values, no secrets)."""
    payload: dict[str, Any] = {
        "status": (decision.status or EventStatus.ERROR).value,
        "execution_id": execution.id if execution is not None else execution_id,
        "execution_status": execution.status if execution is not None else None,
        "html_url": execution.html_url if execution is not None else None,
        "message": decision.message,
        "waits_for": decision.waits_for.value if decision.waits_for is not None else None,
        "waiting_action_execution_id": decision.waiting_action_execution_id,
        "waiting_action_name": decision.waiting_action_name,
        "outputted_variables": execution.outputted_variables() if execution is not None else {},
    }
    payload.update(decision.extra)
    return payload


def failure_report(message: str, html_url: str | None, failed_action: str | None, log_tail: list[str]) -> str:
    """The failure text a task fails with: what failed, where, the link and the failed action's last log lines."""
    lines = [message]
    if html_url and html_url not in message:
        lines.append(f"Open it in Buddy: {html_url}")
    if log_tail:
        lines.append(f"Last {len(log_tail)} log lines of {failed_action or 'the failed action'}:")
        lines.extend(f"    {line}" for line in log_tail)
    return "\n".join(lines)
