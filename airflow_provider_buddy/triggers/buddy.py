"""``BuddyExecutionTrigger``: waits on a Buddy execution in the triggerer, holding no worker.

The wait loop (deadline, backoff, error events, exactly one event) is :class:`PollingTrigger`'s; this
module says how to read a Buddy execution, decide, approve and cancel.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from airflow_provider_buddy.backoff import CANCEL_ATTEMPTS, MAX_BACKOFF
from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.models.buddy import Execution, variables_from
from airflow_provider_buddy.models.buddy_status import StatusGroup, WaitKind
from airflow_provider_buddy.triggers._base import Poll, PollingTrigger
from airflow_provider_buddy.triggers._poller import SharedPoller, buddy_hook, execution_key, read_execution
from airflow_provider_buddy.waiting import (
    DEFAULT_LOG_TAIL,
    ApprovalPolicy,
    Decision,
    EventStatus,
    Step,
    decide,
    describe_execution,
    event_payload,
)

__all__ = ["CANCEL_ATTEMPTS", "MAX_BACKOFF", "BuddyExecutionTrigger"]


class BuddyExecutionTrigger(PollingTrigger):
    """
    Polls one Buddy execution until it ends (or stops for a person, per ``on_approval``), then fires
    exactly one event. Transient trouble (network, 429, 5xx) never ends the wait; 401/403/404 end it
    with an ``error`` event that says what to fix.

    Event payload: ``status`` (success, waiting_for_approval, failed, cancelled, skipped, timeout,
    error), ``execution_id``, ``execution_status``, ``html_url``, ``message``, ``waits_for``,
    ``waiting_action_execution_id``, ``waiting_action_name``, ``outputted_variables``, and on failure
    ``failed_action``, ``error_message``, ``log_tail``.

    :param buddy_conn_id: the Airflow connection id (never a token).
    :param project_name: the project's name id.
    :param pipeline_id: the pipeline's numeric id.
    :param execution_id: the execution to wait on.
    :param workspace: overrides the connection's workspace.
    :param poll_interval: seconds between polls.
    :param on_approval: ``wait``, ``succeed``, ``fail`` or ``approve`` (see :class:`ApprovalPolicy`).
    :param approval_variables: answers for a "pass arguments" prompt when ``on_approval="approve"``
        (plain values only: the operators keep encrypted answers on the worker).
    :param end_time: epoch seconds; past it the trigger ends with a ``timeout`` event.
    :param cancel_on_kill: cancel the execution when the task is killed while deferred (Airflow 3.3+).
    :param cancel_on_timeout: cancel the execution when ``end_time`` passes.
    :param skipped_is_success: read a SKIPPED execution as success.
    :param log_tail: how many log lines of a failed action to fetch for the failure message.
    :param approved_action_ids: gates already approved by this task (never approved twice).
    """

    def __init__(
        self,
        *,
        buddy_conn_id: str,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        workspace: str | None = None,
        poll_interval: float = 10.0,
        on_approval: str = "wait",
        approval_variables: Mapping[str, Any] | Sequence[Any] | None = None,
        end_time: float | None = None,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        skipped_is_success: bool = False,
        log_tail: int = DEFAULT_LOG_TAIL,
        approved_action_ids: Sequence[str] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.buddy_conn_id = buddy_conn_id
        self.project_name = project_name
        self.pipeline_id = int(pipeline_id)
        self.execution_id = int(execution_id)
        self.workspace = workspace
        self.poll_interval = float(poll_interval)
        self.on_approval = ApprovalPolicy.parse(on_approval).value
        self.approval_variables = [v.to_api() for v in variables_from(approval_variables)] or None
        if self.approval_variables and any(v.get("encrypted") for v in self.approval_variables):
            raise ValueError("approval_variables: encrypted values must not be given to a trigger (they would be serialized)")
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.skipped_is_success = skipped_is_success
        self.log_tail = log_tail
        self.approved_action_ids = sorted(approved_action_ids or [])
        self._approved: set[str] = set(self.approved_action_ids)
        self._key = execution_key(buddy_conn_id, workspace, project_name, self.pipeline_id, self.execution_id)
        self._last_message = ""
        self._unknown_seen: set[str | None] = set()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and plain kwargs: the connection id, never a token."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "buddy_conn_id": self.buddy_conn_id,
                "project_name": self.project_name,
                "pipeline_id": self.pipeline_id,
                "execution_id": self.execution_id,
                "workspace": self.workspace,
                "poll_interval": self.poll_interval,
                "on_approval": self.on_approval,
                "approval_variables": self.approval_variables,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "cancel_on_timeout": self.cancel_on_timeout,
                "skipped_is_success": self.skipped_is_success,
                "log_tail": self.log_tail,
                "approved_action_ids": self.approved_action_ids,
            },
        )

    # ---- the wait (the loop itself is PollingTrigger's) -------------------------------------------
    @property
    def subject(self) -> str:
        """``Buddy execution N``."""
        return f"Buddy execution {self.execution_id}"

    @property
    def read_key(self) -> Hashable:
        """The shared-read key of the execution."""
        return self._key

    def describe_wait(self) -> str:
        """The line logged when the wait starts."""
        return (
            f"Waiting in the triggerer on Buddy execution {self.execution_id} of pipeline {self.pipeline_id} "
            f"in project {self.project_name!r} (poll every {self.poll_interval:.0f}s, on_approval={self.on_approval})"
        )

    def resume_fields(self) -> dict[str, Any]:
        """What the task needs to resume (Airflow's dag.test passes only the event back, not defer kwargs)."""
        return {"pipeline_id": self.pipeline_id, "end_time": self.end_time, "approved_action_ids": sorted(self._approved)}

    async def poll(self, poller: SharedPoller) -> Poll:
        """Read the execution once (shared with every waiter on it), decide, approve when the policy says so."""
        execution = await read_execution(
            poller,
            self.buddy_conn_id,
            self.workspace,
            self.project_name,
            self.pipeline_id,
            self.execution_id,
            max_age=self.poll_interval * 0.9,
        )
        decision = decide(
            execution,
            ApprovalPolicy(self.on_approval),
            has_approval_variables=bool(self.approval_variables),
            approved_action_ids=frozenset(self._approved),
            skipped_is_success=self.skipped_is_success,
        )
        if decision.step is Step.FINISH:
            return Poll.done(await self._finish(poller, execution, decision))
        next_in: float | None = None
        if decision.step is Step.APPROVE:
            if await self._approve(poller, execution, decision):
                self._approved.add(decision.waiting_action_execution_id or f"execution-{execution.id}")
                next_in = min(self.poll_interval, 1.0)
        elif decision.message and decision.message != self._last_message:
            self.log.info("%s", decision.message)
        self._last_message = decision.message or self._last_message
        if execution.status_group is StatusGroup.UNKNOWN and execution.status not in self._unknown_seen:
            self._unknown_seen.add(execution.status)  # logged once per status, not every poll
            self.log.info("Buddy reported status %r, unknown to this provider; reading it as still going", execution.status)
        return Poll.again(next_in)

    async def _approve(self, poller: SharedPoller, execution: Execution, decision: Decision) -> bool:
        hook = await buddy_hook(poller, self.buddy_conn_id)
        variables = self.approval_variables if decision.waits_for is WaitKind.VARIABLES else None
        try:
            await hook.aapprove_execution(
                self.project_name,
                self.pipeline_id,
                self.execution_id,
                variables=variables,
                action_execution_id=decision.waiting_action_execution_id,
                workspace=self.workspace,
            )
        except ProviderApiError as exc:
            if exc.kind is ErrorKind.CLIENT:
                self.log.info("Approval of %s not applied (%s); it was probably answered already", describe_execution(execution), exc)
                return True
            self.log.warning("Could not approve %s yet: %s", describe_execution(execution), exc)
            return False
        finally:
            poller.forget(self._key)
        keys = ", ".join(v["key"] for v in variables) if variables else ""
        self.log.info(
            "Approved %s at action %r (%s)",
            describe_execution(execution),
            decision.waiting_action_name,
            f"APPLY_VARIABLES: {keys}" if keys else "APPLY",
        )
        return True

    async def _finish(self, poller: SharedPoller, execution: Execution, decision: Decision) -> dict[str, Any]:
        payload = event_payload(execution, decision)
        if decision.status is EventStatus.FAILED and decision.waits_for is None:
            payload.update(await self._failure_details(poller, execution))
        return payload

    async def _failure_details(self, poller: SharedPoller, execution: Execution) -> dict[str, Any]:
        failed = execution.failed_action
        details: dict[str, Any] = {"failed_action": None, "error_message": None, "log_tail": []}
        if failed is None or failed.action_execution_id is None:
            return details
        details["failed_action"] = failed.name
        details["error_message"] = failed.error_message
        try:
            hook = await buddy_hook(poller, self.buddy_conn_id)
            if failed.error_message is None:
                full = await hook.aget_action_execution(
                    self.project_name, self.pipeline_id, self.execution_id, failed.action_execution_id, workspace=self.workspace
                )
                details["error_message"] = full.error_message
            if self.log_tail > 0:
                details["log_tail"] = await hook.aget_action_execution_logs(
                    self.project_name,
                    self.pipeline_id,
                    self.execution_id,
                    failed.action_execution_id,
                    tail=self.log_tail,
                    workspace=self.workspace,
                )
        except ProviderApiError as exc:
            self.log.warning("Could not fetch the failed action's log: %s", exc)
        return details

    def timeout_payload(self, current: Any, message: str) -> dict[str, Any]:
        """A ``timeout`` event, with the execution's last state when the cancel read it."""
        return event_payload(current, Decision(Step.FINISH, EventStatus.TIMEOUT, message), execution_id=self.execution_id)

    async def read_current(self, poller: SharedPoller) -> Execution:
        """The execution as it is now."""
        hook = await buddy_hook(poller, self.buddy_conn_id)
        return await hook.aget_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)

    async def send_cancel(self, poller: SharedPoller) -> Execution:
        """``CANCEL`` the execution."""
        hook = await buddy_hook(poller, self.buddy_conn_id)
        return await hook.acancel_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)

    def describe(self, current: Execution) -> str:
        """The execution, with its link."""
        return describe_execution(current)

    def error_payload(self, message: str, kind: ErrorKind | None) -> dict[str, Any]:
        """An ``error`` event naming the error kind."""
        decision = Decision(Step.FINISH, EventStatus.ERROR, message)
        payload = event_payload(None, decision, execution_id=self.execution_id)
        payload["error_kind"] = kind.value if kind is not None else None
        return payload
