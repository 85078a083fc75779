"""The one decision every Buddy waiter makes: given an execution's state and the approval policy, keep
waiting, approve, or finish (and how), and the event a wait ends with. Used by the sensor's poke, the
trigger and the operators' worker wait alike. No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.models.buddy_status import approve_operations
from airflow_provider_buddy.models.status import StatusGroup, WaitKind
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, Decision, EventStatus, Step, WaitEvent

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.buddy import FailureDetails
    from airflow_provider_buddy.models.buddy import Execution, Variable

DEFAULT_LOG_TAIL = 50

_WAIT_LABELS = {
    WaitKind.APPROVAL: "approval",
    WaitKind.VARIABLES: "variables (a 'pass arguments' prompt)",
    WaitKind.VISUAL_TEST: "a visual-test review",
}


class BuddyWaitEvent(WaitEvent, total=False):
    """The payload of a Buddy wait's one event (plain JSON values, never a secret)."""

    execution_id: int | None
    execution_status: str | None
    html_url: str | None
    pipeline_id: int
    waiting_action_execution_id: str | None
    waiting_action_name: str | None
    outputted_variables: dict[str, str | None]
    """Variables the actions output, encrypted ones masked."""
    failed_action: str | None
    error_message: str | None
    log_tail: list[str]
    approved_action_ids: list[str]
    """Gates this task already approved: a resumed task never approves them again."""


class BuddyWaitSummary(TypedDict, total=False):
    """What a Buddy wait returns (XCom): the execution, its final status, its link and outputs (and the gate)."""

    execution_id: int | None
    status: str | None
    html_url: str | None
    outputted_variables: dict[str, str | None]
    waits_for: str | None
    waiting_action_execution_id: str | None
    waiting_action_name: str | None


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
    if group.finished:
        return _ended(execution, skipped_is_success)
    if group is StatusGroup.WAITING_FOR_PERSON:
        return _at_gate(execution, policy, has_approval_variables, approved_action_ids)
    return Decision(Step.KEEP_WAITING)


def _ended(execution: Execution, skipped_is_success: bool) -> Decision:
    ref = describe_execution(execution)
    group = execution.status_group
    if group is StatusGroup.SUCCESS:
        return Decision.finish(EventStatus.SUCCESS, f"{ref} succeeded")
    if group is StatusGroup.SKIPPED:
        if (execution.status or "").upper() == "NOT_EXECUTED":
            what = f"{ref} ended without running (status NOT_EXECUTED)"
        else:
            what = f"{ref} was skipped by Buddy (a newer run superseded it)"
        if skipped_is_success:
            return Decision.finish(EventStatus.SUCCESS, f"{what}; read as success (skipped_is_success=True)")
        return Decision.finish(EventStatus.SKIPPED, what)
    if group is StatusGroup.CANCELLED:
        return Decision.finish(EventStatus.CANCELLED, f"{ref} was cancelled (status {execution.status})")
    failed = execution.failed_action
    where = f" at action {failed.name!r}" if failed is not None else ""
    error = f": {failed.error_message}" if failed is not None and failed.error_message else ""
    return Decision.finish(EventStatus.FAILED, f"{ref} failed{where}{error}")


def _at_gate(execution: Execution, policy: ApprovalPolicy, has_answers: bool, approved: frozenset[str]) -> Decision:
    action = execution.waiting_action
    kind = execution.waits_for
    action_id = action.action_execution_id if action is not None else None
    action_name = action.name if action is not None else None
    ref = describe_execution(execution)
    what = what_it_waits_for(kind, action_name)

    def gate(step: Step, status: EventStatus | None, message: str) -> Decision:
        return Decision(step, status, message, kind, action_id, action_name)

    if policy is ApprovalPolicy.WAIT:
        return gate(Step.KEEP_WAITING, None, f"{ref} waits for {what}; waiting for someone to answer in Buddy")
    if policy is ApprovalPolicy.SUCCEED:
        return gate(Step.FINISH, EventStatus.WAITING_FOR_APPROVAL, f"{ref} waits for {what}")
    if policy is ApprovalPolicy.FAIL:
        return gate(Step.FINISH, EventStatus.FAILED, f"{ref} stopped for {what}, and on_approval='fail'")
    if action_id is not None and action_id in approved:
        return gate(Step.KEEP_WAITING, None, f"{ref}: {what} already approved; waiting for Buddy to move on")
    if action is not None and action.approval_date is not None:
        return gate(Step.KEEP_WAITING, None, f"{ref}: {what} already has an approval; waiting for Buddy to move on")
    if kind is WaitKind.VARIABLES and not has_answers:
        message = f"{ref} waits for {what}, but on_approval='approve' was given no approval_variables to answer it with"
        return gate(Step.FINISH, EventStatus.ERROR, message)
    operation = approve_operations(execution.waiting_status)[0]
    return gate(Step.APPROVE, None, f"{ref} waits for {what}; approving with {operation} (on_approval='approve')")


def what_it_waits_for(kind: WaitKind | None, action_name: str | None) -> str:
    """What a person is asked for, in words: ``approval at action 'Approve production'``."""
    label = _WAIT_LABELS.get(kind, "a person") if kind is not None else "a person"
    return f"{label} at action {action_name!r}" if action_name else label


def event_payload(execution: Execution | None, decision: Decision, *, execution_id: int | None = None) -> BuddyWaitEvent:
    """The payload of the wait's one ``TriggerEvent`` (plain JSON values, no secrets)."""
    return BuddyWaitEvent(
        status=(decision.status or EventStatus.ERROR).value,
        execution_id=execution.id if execution is not None else execution_id,
        execution_status=execution.status if execution is not None else None,
        html_url=execution.html_url if execution is not None else None,
        message=decision.message,
        waits_for=decision.waits_for.value if decision.waits_for is not None else None,
        waiting_action_execution_id=decision.waiting_action_execution_id,
        waiting_action_name=decision.waiting_action_name,
        outputted_variables=execution.outputted_variables() if execution is not None else {},
    )


def with_failure_details(event: BuddyWaitEvent, details: FailureDetails) -> BuddyWaitEvent:
    """``event`` with why the execution failed (its failed action, error message and log tail)."""
    event["failed_action"] = details["failed_action"]
    event["error_message"] = details["error_message"]
    event["log_tail"] = details["log_tail"]
    return event


def summary_from_event(event: BuddyWaitEvent) -> BuddyWaitSummary:
    """The XCom a wait returns: execution id, final status, link, non-secret outputted variables (and the gate)."""
    summary = BuddyWaitSummary(
        execution_id=event.get("execution_id"),
        status=event.get("execution_status"),
        html_url=event.get("html_url"),
        outputted_variables=event.get("outputted_variables") or {},
    )
    if event.get("status") == EventStatus.WAITING_FOR_APPROVAL.value:
        summary["waits_for"] = event.get("waits_for")
        summary["waiting_action_execution_id"] = event.get("waiting_action_execution_id")
        summary["waiting_action_name"] = event.get("waiting_action_name")
    return summary


def execution_summary(execution: Execution) -> BuddyWaitSummary:
    """The summary of an execution as read now (what the cancel and approve operators return)."""
    return summary_from_event(event_payload(execution, Decision(Step.FINISH, EventStatus.SUCCESS)))


def failure_report(message: str, html_url: str | None, failed_action: str | None, log_tail: list[str]) -> str:
    """The failure text a task fails with: what failed, where, the link and the failed action's last log lines."""
    lines = [message]
    if html_url and html_url not in message:
        lines.append(f"Open it in Buddy: {html_url}")
    if log_tail:
        lines.append(f"Last {len(log_tail)} log lines of {failed_action or 'the failed action'}:")
        lines.extend(f"    {line}" for line in log_tail)
    return "\n".join(lines)


@dataclass(frozen=True)
class GateApproval:
    """
    Approving the gate a decision found, described without I/O: what to send (the caller sends it, sync or
    async) and what its outcome means.

    :param execution: the execution as last read.
    :param decision: the decision that said to approve.
    :param variables: the answers, for a "pass arguments" prompt (None for a plain approval).
    """

    execution: Execution
    decision: Decision
    variables: list[Variable] | None

    @classmethod
    def of(cls, execution: Execution, decision: Decision, answers: Sequence[Variable]) -> GateApproval:
        """The approval of the gate ``decision`` found; answers are sent only to a variables prompt."""
        return cls(execution, decision, list(answers) if decision.waits_for is WaitKind.VARIABLES else None)

    @property
    def key(self) -> str:
        """What this waiter records as approved (never approved twice)."""
        return self.decision.waiting_action_execution_id or f"execution-{self.execution.id}"

    @property
    def wait_status(self) -> str | None:
        """The status of the wait, which decides the operation that answers it."""
        return self.execution.waiting_status

    def sent(self, operation: str) -> str:
        """The log line once Buddy took the approval with ``operation`` (encrypted answers masked)."""
        shown = ", ".join(f"{v.key}={v.safe_value()}" for v in self.variables) if self.variables else ""
        what = f"{operation} {shown}" if shown else operation
        return f"Approved {describe_execution(self.execution)} at action {self.decision.waiting_action_name!r} ({what})"

    def refused(self, error: ProviderApiError) -> tuple[bool, str]:
        """
        What an error answer to the approval means: ``(done, log line)``. Buddy refusing it (a 4xx) means the gate
        was answered already: done. Transient trouble: not done, the next look at the execution decides again (so the
        gate is neither approved twice nor left waiting). Anything else (401/403/404) is raised again.
        """
        ref = describe_execution(self.execution)
        if error.kind is ErrorKind.CLIENT:
            return True, f"Approval of {ref} not applied ({error}); it was probably answered already"
        if error.transient:
            return False, f"Could not approve {ref} yet ({error}); looking at it again before answering"
        raise error


def approval_answers_for_trigger(policy: ApprovalPolicy, answers: Sequence[Variable]) -> tuple[ApprovalPolicy, list[dict[str, Any]] | None]:
    """
    The policy and answers a trigger is given. Encrypted answers never go into a trigger (it is serialized into
    Airflow's database): the trigger then stops at the gate (``succeed``) and the worker answers it.
    """
    if policy is ApprovalPolicy.APPROVE and any(v.encrypted for v in answers):
        return ApprovalPolicy.SUCCEED, None
    return policy, [v.to_api() for v in answers] or None
