"""What the Buddy sensor and operators share on the worker: waiting on an execution synchronously or by
deferring to :class:`BuddyExecutionTrigger`, resuming from the trigger's event, and turning the wait's one
event into a return value or a typed failure. Both modes decide with
:func:`airflow_provider_buddy.utils.buddy_waiting.decide` and end in :meth:`BuddyWaitingMixin.finish_wait`,
so they give the same results.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow_provider_buddy.exceptions import (
    BuddyApprovalRequiredError,
    BuddyError,
    BuddyExecutionCancelledError,
    BuddyExecutionError,
    BuddyExecutionFailedError,
    BuddyExecutionSkippedError,
    BuddyWaitTimeoutError,
    ProviderApiError,
)
from airflow_provider_buddy.utils.backoff import look_or_wait_out, wait_in_worker
from airflow_provider_buddy.utils.buddy_variables import approval_variables_of
from airflow_provider_buddy.utils.buddy_waiting import (
    BuddyWaitEvent,
    BuddyWaitSummary,
    GateApproval,
    approval_answers_for_trigger,
    decide,
    event_payload,
    failure_report,
    summary_from_event,
    with_failure_details,
)
from airflow_provider_buddy.utils.deferral import trigger_ending
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, Decision, EventStatus, Step, end_of_wait, with_link

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.buddy import BuddyHook, FailureDetails
    from airflow_provider_buddy.models.buddy import Execution, Variable


class BuddyWaitingMixin:
    """
    Waiting on one execution from a task, in either mode. The host class provides the attributes
    read below (all set in its ``__init__``) and ``hook``, ``log``, ``defer``.
    """

    buddy_conn_id: str
    workspace: str | None
    project_name: str
    on_approval: str
    approval_variables: Any
    skipped_is_success: bool
    log_tail_lines: int
    cancel_on_kill: bool
    log: Any
    last_seen: Execution | None = None
    """The execution as the last poll read it."""
    wait_returns: ClassVar[str] = "id"
    """What the task returns when its wait ends well: the execution ``"id"`` (operators) or the ``"summary"`` (sensor)."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> BuddyHook: ...

        def defer(
            self,
            *,
            trigger: Any,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | int | float | None = None,
        ) -> NoReturn: ...

    # ---- one look --------------------------------------------------------------------------------
    def _approval_answers(self) -> list[Variable]:
        return approval_variables_of(self.approval_variables)

    def poll_once(self, pipeline_id: int, execution_id: int, approved: set[str]) -> BuddyWaitEvent | None:
        """Read the execution once; approve it when the policy says so. Returns the end event, or None to keep waiting."""
        execution = self.hook.get_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
        self.last_seen = execution
        answers = self._approval_answers()
        decision = decide(
            execution,
            ApprovalPolicy.parse(self.on_approval),
            has_approval_variables=bool(answers),
            approved_action_ids=frozenset(approved),
            skipped_is_success=self.skipped_is_success,
        )
        if decision.step is Step.FINISH:
            payload = event_payload(execution, decision)
            if decision.status is EventStatus.FAILED and decision.waits_for is None:
                with_failure_details(payload, self.failure_details(pipeline_id, execution))
            return payload
        if decision.step is Step.APPROVE:
            approval = GateApproval.of(execution, decision, answers)
            if self.approve_gate(pipeline_id, approval):
                approved.add(approval.key)
        elif decision.message:
            self.log.info("%s", decision.message)
        return None

    def approve_gate(self, pipeline_id: int, approval: GateApproval) -> bool:
        """Send the approval; True once the gate counts as answered (see :meth:`GateApproval.refused`)."""
        try:
            answer = self.hook.answer_wait(
                self.project_name,
                pipeline_id,
                approval.execution.id,
                approval.wait_status,
                variables=approval.variables,
                action_execution_id=approval.decision.waiting_action_execution_id,
                workspace=self.workspace,
            )
        except ProviderApiError as exc:
            done, note = approval.refused(exc)
            (self.log.info if done else self.log.warning)("%s", note)
            return done
        self.log.info("%s", approval.sent(answer.operation))
        return True

    def failure_details(self, pipeline_id: int, execution: Execution) -> FailureDetails:
        """The failed action's name, error message and last log lines (best effort)."""
        try:
            return self.hook.get_failure_details(
                self.project_name, pipeline_id, execution, tail=self.log_tail_lines, workspace=self.workspace
            )
        except BuddyError as exc:
            self.log.warning("Could not fetch the failed action's log: %s", exc)
            failed = execution.failed_action
            return {
                "failed_action": failed.name if failed is not None else None,
                "error_message": failed.error_message if failed is not None else None,
                "log_tail": [],
            }

    # ---- waiting in the worker -------------------------------------------------------------------
    def wait_sync(self, pipeline_id: int, execution_id: int, poll_interval: float, deadline: float | None = None) -> Any:
        """Poll from the worker until the wait ends (transient trouble backs off, never ends it); returns the summary or raises."""
        approved: set[str] = set()
        subject = f"Buddy execution {execution_id}"
        payload = wait_in_worker(self.log, lambda: self.poll_once(pipeline_id, execution_id, approved), subject, poll_interval, deadline)
        if payload is None:
            timeout = Decision.deadline_passed(subject)
            payload = event_payload(None, timeout, execution_id=execution_id)
        return self.finish_wait(payload)

    # ---- waiting in the triggerer ----------------------------------------------------------------
    def first_look_or_defer(
        self, pipeline_id: int, execution_id: int, poll_interval: float, *, end_time: float | None, cancel_on_timeout: bool
    ) -> Any:
        """Look once (a run already ended or at its gate needs no triggerer), else hand the wait to the triggerer.
        Transient trouble on this look defers too: the triggerer looks again."""
        approved: set[str] = set()
        payload, _, _ = look_or_wait_out(
            self.log, lambda: self.poll_once(pipeline_id, execution_id, approved), 0, f"Buddy execution {execution_id}"
        )
        if payload is not None:
            return self.finish_wait(payload)
        self.defer_wait(
            pipeline_id, execution_id, poll_interval, end_time=end_time, cancel_on_timeout=cancel_on_timeout, approved=sorted(approved)
        )

    def defer_wait(
        self,
        pipeline_id: int,
        execution_id: int,
        poll_interval: float,
        *,
        end_time: float | None = None,
        cancel_on_timeout: bool = False,
        approved: list[str] | None = None,
    ) -> NoReturn:
        """Hand the wait to the triggerer. Encrypted approval answers never go into the trigger: the
        trigger then stops at the gate and the worker answers it in :meth:`resume_wait`."""
        from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger

        wanted = ApprovalPolicy.parse(self.on_approval)
        policy, answers = approval_answers_for_trigger(wanted, self._approval_answers())
        secret_gate = policy is not wanted  # the worker answers the gate: the trigger hands it back
        self.defer(
            trigger=BuddyExecutionTrigger(
                buddy_conn_id=self.buddy_conn_id,
                project_name=self.project_name,
                pipeline_id=pipeline_id,
                execution_id=execution_id,
                workspace=self.workspace,
                poll_interval=poll_interval,
                on_approval=policy.value,
                approval_variables=answers,
                end_time=end_time,
                cancel_on_kill=self.cancel_on_kill,
                cancel_on_timeout=cancel_on_timeout,
                skipped_is_success=self.skipped_is_success,
                log_tail=self.log_tail_lines,
                approved_action_ids=approved or [],
                **trigger_ending(self, returns=self.wait_returns, may_end_in_triggerer=not secret_gate),
            ),
            method_name="execute_complete",
        )

    def event_of_ended_task(self, pipeline_id: int, execution_id: int) -> BuddyWaitEvent:
        """The event of a wait its trigger ended in the triggerer, read again (``dag.test()`` resumes such a task with
        only the state's name): the execution ended well, so one look gives the same event."""
        payload = self.poll_once(pipeline_id, execution_id, set())
        if payload is None:
            raise BuddyExecutionError(f"Buddy execution {execution_id}: the trigger ended the task, but the execution reads as still going")
        return payload

    def resume_wait(self, event: BuddyWaitEvent, pipeline_id: int, poll_interval: float) -> Any:
        """
        The task resumed from the trigger's event. A trigger that stopped at a gate only because the answers are
        secret (they never go into a trigger) has the gate answered here, then the wait goes back to the triggerer;
        any other event ends the wait (:meth:`finish_wait`).
        """
        secret_gate = (
            event.get("status") == EventStatus.WAITING_FOR_APPROVAL.value
            and ApprovalPolicy.parse(self.on_approval) is ApprovalPolicy.APPROVE
        )
        if not secret_gate:
            return self.finish_wait(event)
        execution_id = int(event.get("execution_id") or 0)
        approved = set(event.get("approved_action_ids") or ())
        payload, failed_looks, _ = look_or_wait_out(
            self.log, lambda: self.poll_once(pipeline_id, execution_id, approved), 0, f"Buddy execution {execution_id}"
        )
        if payload is not None:
            return self.finish_wait(payload)
        if failed_looks:
            self.log.warning("Could not answer Buddy execution %s yet; waiting in the triggerer again", execution_id)
        self.defer_wait(
            pipeline_id,
            execution_id,
            poll_interval,
            end_time=event.get("end_time"),
            cancel_on_timeout=self.cancel_on_kill,
            approved=sorted(approved),
        )

    # ---- the end of a wait, either mode ------------------------------------------------------------
    def finish_wait(self, event: BuddyWaitEvent) -> BuddyWaitSummary:
        """Turn the wait's final event into the task's return value, or raise the matching error."""
        return end_of_wait(self.log, event, summary_from_event, wait_error)


def wait_error(event: BuddyWaitEvent) -> BuddyExecutionError:
    """The error a wait that ended badly fails its task with: the link, and for a failure the failed action and its log."""
    status = event.get("status")
    message = str(event.get("message") or "")
    url = event.get("html_url")
    ids: dict[str, Any] = {"execution_id": event.get("execution_id"), "html_url": url, "execution_status": event.get("execution_status")}
    if event.get("waits_for") and status in (EventStatus.FAILED.value, EventStatus.ERROR.value):
        return BuddyApprovalRequiredError(with_link(message, url), **ids)
    if status == EventStatus.FAILED.value:
        report = failure_report(message, url, event.get("failed_action"), list(event.get("log_tail") or []))
        error_message = event.get("error_message")
        if error_message and str(error_message) not in message:
            report = report.replace(message, f"{message}: {error_message}", 1)
        return BuddyExecutionFailedError(report, **ids)
    if status == EventStatus.CANCELLED.value:
        return BuddyExecutionCancelledError(with_link(message, url), **ids)
    if status == EventStatus.SKIPPED.value:
        return BuddyExecutionSkippedError(with_link(message + "; set skipped_is_success=True to accept it", url), **ids)
    if status == EventStatus.TIMEOUT.value:
        return BuddyWaitTimeoutError(with_link(message, url), **ids)
    return BuddyExecutionError(with_link(message or f"the wait ended with an unexpected event {status!r}", url), **ids)


def resumed_pipeline_id(event: BuddyWaitEvent, fallback: Any) -> int:
    """The pipeline id a trigger event was about (events carry it), else ``fallback()``."""
    value = event.get("pipeline_id")
    return int(value) if value is not None else int(fallback())
