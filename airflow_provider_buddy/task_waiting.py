"""What the sensor and the operators share on the worker: waiting on an execution synchronously or
by deferring to :class:`BuddyExecutionTrigger`, and turning the wait's one event into a return value
or a typed failure. Both modes go through :func:`airflow_provider_buddy.waiting.decide` and
end in :meth:`BuddyWaitingMixin.finish_wait`, so they give the same results.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

from airflow_provider_buddy.backoff import backoff_delay, look_or_wait_out
from airflow_provider_buddy.exceptions import (
    BuddyApprovalRequiredError,
    BuddyError,
    BuddyExecutionCancelledError,
    BuddyExecutionError,
    BuddyExecutionFailedError,
    BuddyExecutionSkippedError,
    BuddyWaitTimeoutError,
    ErrorKind,
    ProviderApiError,
)
from airflow_provider_buddy.models.buddy_status import WaitKind
from airflow_provider_buddy.models.validation import describe_validation_error
from airflow_provider_buddy.waiting import (
    ApprovalPolicy,
    Decision,
    EventStatus,
    Step,
    decide,
    describe_execution,
    event_payload,
    failure_report,
)

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.buddy import BuddyHook
    from airflow_provider_buddy.models.buddy import Execution, Variable

SUMMARY_KEYS = ("execution_id", "execution_status", "html_url", "outputted_variables")
GATE_KEYS = ("waits_for", "waiting_action_execution_id", "waiting_action_name")


def approval_variables_of(value: Any, parameter: str = "approval_variables") -> list[Variable]:
    """Read approval variables (dict or list), with an error naming the parameter (and never echoing values)."""
    from airflow_provider_buddy.models.buddy import variables_from

    try:
        return variables_from(value)
    except ValidationError as exc:
        raise ValueError(f"{parameter}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{parameter}: {exc}") from None


def mask_variables(value: Any) -> None:
    """
    Register the encrypted values among variables (as given, parsed or rendered) with Airflow's secrets masker, so
    that rendered template fields and logs show ``***``. A string (a template that rendered to text instead
    of a list or dict) is masked whole: it cannot be read as variables and may hold their values.
    """
    if not value:
        return
    secrets: list[str] = []
    if isinstance(value, str):
        secrets.append(value)
    else:
        from airflow_provider_buddy.models.buddy import variables_from

        try:
            secrets.extend(v.value for v in variables_from(value) if v.encrypted and v.value)
        except (ValueError, TypeError):
            return  # not variables: the parameter's own check reports it
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        mask_secret(secret)


def summary_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """The XCom a wait returns: execution id, final status, link, non-secret outputted variables (and the gate)."""
    result = {
        "execution_id": event.get("execution_id"),
        "status": event.get("execution_status"),
        "html_url": event.get("html_url"),
        "outputted_variables": event.get("outputted_variables") or {},
    }
    if event.get("status") == EventStatus.WAITING_FOR_APPROVAL.value:
        result.update({key: event.get(key) for key in GATE_KEYS})
    return result


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

    if TYPE_CHECKING:

        @property
        def hook(self) -> BuddyHook: ...

        def defer(
            self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: timedelta | int | float | None = None
        ) -> NoReturn: ...

    # ---- one step of the synchronous wait ------------------------------------------------------
    def _approval_answers(self) -> list[Variable]:
        return approval_variables_of(self.approval_variables)

    def poll_once(self, pipeline_id: int, execution_id: int, approved: set[str]) -> dict[str, Any] | None:
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
                payload.update(self.failure_details(pipeline_id, execution))
            return payload
        if decision.step is Step.APPROVE:
            if self.approve_gate(pipeline_id, execution, decision, answers):
                approved.add(decision.waiting_action_execution_id or f"execution-{execution.id}")
        elif decision.message:
            self.log.info("%s", decision.message)
        return None

    def approve_gate(self, pipeline_id: int, execution: Execution, decision: Decision, answers: Sequence[Variable]) -> bool:
        """Send APPLY (or APPLY_VARIABLES) for the waiting action; an answer Buddy refuses as stale is logged, not fatal.
        Returns False after transient trouble (the answer may or may not have arrived): the next look at the
        execution decides again, so the gate is neither approved twice nor left waiting."""
        variables = list(answers) if decision.waits_for is WaitKind.VARIABLES else None
        try:
            self.hook.approve_execution(
                self.project_name,
                pipeline_id,
                execution.id,
                variables=variables,
                action_execution_id=decision.waiting_action_execution_id,
                workspace=self.workspace,
            )
        except ProviderApiError as exc:
            if exc.kind is ErrorKind.CLIENT:
                self.log.info("Approval of %s not applied (%s); it was probably answered already", describe_execution(execution), exc)
                return True
            if exc.transient:
                self.log.warning("Could not approve %s yet (%s); looking at it again before answering", describe_execution(execution), exc)
                return False
            raise
        shown = ", ".join(f"{v.key}={v.safe_value()}" for v in variables) if variables else ""
        self.log.info(
            "Approved %s at action %r (%s)",
            describe_execution(execution),
            decision.waiting_action_name,
            f"APPLY_VARIABLES {shown}" if shown else "APPLY",
        )
        return True

    def failure_details(self, pipeline_id: int, execution: Execution) -> dict[str, Any]:
        """The failed action's name, error message and last log lines (best effort)."""
        failed = execution.failed_action
        details: dict[str, Any] = {"failed_action": None, "error_message": None, "log_tail": []}
        if failed is None or failed.action_execution_id is None:
            return details
        details["failed_action"] = failed.name
        details["error_message"] = failed.error_message
        try:
            if failed.error_message is None:
                full = self.hook.get_action_execution(
                    self.project_name, pipeline_id, execution.id, failed.action_execution_id, workspace=self.workspace
                )
                details["error_message"] = full.error_message
            if self.log_tail_lines > 0:
                details["log_tail"] = self.hook.get_action_execution_logs(
                    self.project_name,
                    pipeline_id,
                    execution.id,
                    failed.action_execution_id,
                    tail=self.log_tail_lines,
                    workspace=self.workspace,
                )
        except BuddyError as exc:
            self.log.warning("Could not fetch the failed action's log: %s", exc)
        return details

    def wait_sync(self, context: Any, pipeline_id: int, execution_id: int, poll_interval: float, deadline: float | None = None) -> Any:
        """Poll from the worker until the wait ends (transient trouble backs off, never ends it); returns the summary or raises."""
        approved: set[str] = set()
        streak = 0
        while True:
            payload, streak, retry_after = look_or_wait_out(
                self.log, lambda: self.poll_once(pipeline_id, execution_id, approved), streak, f"Buddy execution {execution_id}"
            )
            if payload is not None:
                return self.finish_wait(context, payload, pipeline_id=pipeline_id)
            if deadline is not None and time.time() >= deadline:
                return self.finish_wait(
                    context,
                    event_payload(
                        None,
                        Decision(
                            Step.FINISH, EventStatus.TIMEOUT, f"Gave up waiting on Buddy execution {execution_id}: the deadline passed"
                        ),
                        execution_id=execution_id,
                    ),
                    pipeline_id=pipeline_id,
                )
            time.sleep(backoff_delay(poll_interval, streak, retry_after) if streak else poll_interval)

    # ---- deferring ---------------------------------------------------------------------------
    def defer_wait(
        self,
        pipeline_id: int,
        execution_id: int,
        poll_interval: float,
        *,
        end_time: float | None = None,
        cancel_on_timeout: bool = False,
        approved: Sequence[str] = (),
    ) -> NoReturn:
        """Hand the wait to the triggerer. Encrypted approval answers never go into the trigger: the
        trigger then stops at the gate and the worker answers it in :meth:`finish_wait`."""
        from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger

        answers = self._approval_answers()
        policy = ApprovalPolicy.parse(self.on_approval)
        trigger_policy, trigger_answers = policy, answers
        if policy is ApprovalPolicy.APPROVE and any(v.encrypted for v in answers):
            trigger_policy, trigger_answers = ApprovalPolicy.SUCCEED, []
        self.defer(
            trigger=BuddyExecutionTrigger(
                buddy_conn_id=self.buddy_conn_id,
                project_name=self.project_name,
                pipeline_id=pipeline_id,
                execution_id=execution_id,
                workspace=self.workspace,
                poll_interval=poll_interval,
                on_approval=trigger_policy.value,
                approval_variables=[v.to_api() for v in trigger_answers] or None,
                end_time=end_time,
                cancel_on_kill=self.cancel_on_kill,
                cancel_on_timeout=cancel_on_timeout,
                skipped_is_success=self.skipped_is_success,
                log_tail=self.log_tail_lines,
                approved_action_ids=list(approved),
            ),
            method_name="execute_complete",
        )

    # ---- the end of a wait, either mode ------------------------------------------------------
    def finish_wait(self, context: Any, event: dict[str, Any], *, pipeline_id: int, poll_interval: float | None = None) -> Any:
        """Turn the wait's event into the task's return value, or raise the matching error."""
        status = event.get("status")
        message = str(event.get("message") or "")
        ids = {
            "execution_id": event.get("execution_id"),
            "html_url": event.get("html_url"),
            "execution_status": event.get("execution_status"),
        }
        if status == EventStatus.SUCCESS.value:
            self.log.info("%s", message)
            return summary_from_event(event)
        if status == EventStatus.WAITING_FOR_APPROVAL.value:
            policy = ApprovalPolicy.parse(self.on_approval)
            if policy is ApprovalPolicy.APPROVE and poll_interval is not None:
                # The trigger stopped at the gate because the answers are secret: answer here, then wait again.
                # Transient trouble here hands the wait back to the trigger, which stops at the gate again.
                done = set(event.get("approved_action_ids") or ())
                try:
                    execution = self.hook.get_execution(
                        self.project_name, pipeline_id, int(event["execution_id"]), workspace=self.workspace
                    )
                except ProviderApiError as exc:
                    if not exc.transient:
                        raise
                    self.log.warning("Could not read %s to answer it (%s); waiting again", event.get("execution_id"), exc)
                    self.defer_wait(
                        pipeline_id,
                        int(event["execution_id"]),
                        poll_interval,
                        end_time=event.get("end_time"),
                        cancel_on_timeout=self.cancel_on_kill,
                        approved=sorted(done),
                    )
                answers = self._approval_answers()
                decision = decide(execution, policy, has_approval_variables=bool(answers), approved_action_ids=frozenset(done))
                if decision.step is Step.APPROVE:
                    if self.approve_gate(pipeline_id, execution, decision, answers):
                        done.add(decision.waiting_action_execution_id or f"execution-{execution.id}")
                elif decision.step is Step.FINISH:
                    return self.finish_wait(context, event_payload(execution, decision), pipeline_id=pipeline_id)
                self.defer_wait(
                    pipeline_id,
                    execution.id,
                    poll_interval,
                    end_time=event.get("end_time"),
                    cancel_on_timeout=self.cancel_on_kill,
                    approved=sorted(done),
                )
            self.log.info("%s; finishing so the DAG's own gate can answer it (on_approval='succeed')", message)
            return summary_from_event(event)
        if status == EventStatus.FAILED.value:
            if event.get("waits_for"):
                raise BuddyApprovalRequiredError(_with_link(message, event), **ids)
            report = failure_report(message, event.get("html_url"), event.get("failed_action"), list(event.get("log_tail") or []))
            if event.get("error_message") and str(event["error_message"]) not in message:
                report = report.replace(message, f"{message}: {event['error_message']}", 1)
            raise BuddyExecutionFailedError(report, **ids)
        if status == EventStatus.CANCELLED.value:
            raise BuddyExecutionCancelledError(_with_link(message, event), **ids)
        if status == EventStatus.SKIPPED.value:
            raise BuddyExecutionSkippedError(_with_link(message + "; set skipped_is_success=True to accept it", event), **ids)
        if status == EventStatus.TIMEOUT.value:
            raise BuddyWaitTimeoutError(_with_link(message, event), **ids)
        if status == EventStatus.ERROR.value and event.get("waits_for"):
            raise BuddyApprovalRequiredError(_with_link(message, event), **ids)
        raise BuddyExecutionError(_with_link(message or f"the wait ended with an unexpected event {status!r}", event), **ids)


def _with_link(message: str, event: dict[str, Any]) -> str:
    url = event.get("html_url")
    return f"{message} ({url})" if url and url not in message else message


def resumed_pipeline_id(event: dict[str, Any], fallback: Any) -> int:
    """The pipeline id a trigger event was about (events carry it), else ``fallback()``."""
    value = event.get("pipeline_id")
    return int(value) if value is not None else int(fallback())
