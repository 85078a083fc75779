"""``BuddyExecutionTrigger``: waits on a Buddy execution in the triggerer, holding no worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.models.buddy import Execution, variables_from
from airflow_provider_buddy.models.buddy_status import WaitKind
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

MAX_BACKOFF = 300.0


class BuddyExecutionTrigger(BaseTrigger):
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

    # ---- the wait ------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the wait ends; yield exactly one event."""
        poller = SharedPoller.for_running_loop()
        self.log.info(
            "Waiting in the triggerer on Buddy execution %s of pipeline %s in project %r (poll every %.0fs, on_approval=%s)",
            self.execution_id, self.pipeline_id, self.project_name, self.poll_interval, self.on_approval,
        )
        async with poller.lease():
            try:
                payload = await self._wait(poller)
            except Exception as exc:  # never crash the triggerer: report and end
                self.log.exception("Unexpected error while waiting on Buddy execution %s", self.execution_id)
                payload = self._error(f"unexpected {type(exc).__name__} while waiting: {exc}")
            finally:
                poller.forget(self._key)
        # What the task needs to resume (Airflow's dag.test passes only the event back, not defer kwargs).
        payload.setdefault("pipeline_id", self.pipeline_id)
        payload.setdefault("end_time", self.end_time)
        payload.setdefault("approved_action_ids", sorted(self._approved))
        yield TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def _wait(self, poller: SharedPoller) -> dict[str, Any]:
        policy = ApprovalPolicy(self.on_approval)
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        approved = self._approved = set(self.approved_action_ids)
        streak = 0
        last_message = ""
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                return await self._timed_out(poller)
            try:
                execution = await read_execution(
                    poller, self.buddy_conn_id, self.workspace, self.project_name, self.pipeline_id, self.execution_id,
                    max_age=self.poll_interval * 0.9,
                )
            except ProviderApiError as exc:
                if not exc.transient:
                    return self._error(str(exc), exc.kind)
                streak += 1
                delay = self._backoff(streak, exc.retry_after)
                if streak == 1:
                    self.log.warning("Buddy is not answering well (%s); still waiting, retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                next_poll = loop.time()
                continue
            if streak:
                self.log.info("Buddy answers again after %d failed polls", streak)
                streak = 0
            decision = decide(
                execution,
                policy,
                has_approval_variables=bool(self.approval_variables),
                approved_action_ids=frozenset(approved),
                skipped_is_success=self.skipped_is_success,
            )
            if decision.step is Step.FINISH:
                return await self._finish(poller, execution, decision)
            if decision.step is Step.APPROVE:
                if await self._approve(poller, execution, decision):
                    approved.add(decision.waiting_action_execution_id or f"execution-{execution.id}")
                    next_poll = loop.time() + min(self.poll_interval, 1.0)
            elif decision.message and decision.message != last_message:
                self.log.info("%s", decision.message)
            last_message = decision.message or last_message
            if execution.status is not None and execution.status_group.value == "unknown":
                self.log.info("Buddy reported status %r, unknown to this provider; reading it as still going", execution.status)
            next_poll = max(next_poll + self.poll_interval, loop.time()) if decision.step is not Step.APPROVE else next_poll
            await asyncio.sleep(max(0.0, next_poll - loop.time()))

    def _backoff(self, streak: int, retry_after: float | None) -> float:
        delay = min(self.poll_interval * float(2 ** min(streak - 1, 10)), MAX_BACKOFF)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_BACKOFF))
        if self.end_time is not None:
            delay = min(delay, max(0.0, self.end_time - time.time()))
        return delay

    async def _approve(self, poller: SharedPoller, execution: Execution, decision: Decision) -> bool:
        hook = await buddy_hook(poller, self.buddy_conn_id)
        variables = self.approval_variables if decision.waits_for is WaitKind.VARIABLES else None
        try:
            await hook.aapprove_execution(
                self.project_name, self.pipeline_id, self.execution_id,
                variables=variables, action_execution_id=decision.waiting_action_execution_id, workspace=self.workspace,
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
                    self.project_name, self.pipeline_id, self.execution_id, failed.action_execution_id,
                    tail=self.log_tail, workspace=self.workspace,
                )
        except ProviderApiError as exc:
            self.log.warning("Could not fetch the failed action's log: %s", exc)
        return details

    async def _timed_out(self, poller: SharedPoller) -> dict[str, Any]:
        message = f"Gave up waiting on Buddy execution {self.execution_id}: the deadline passed"
        execution: Execution | None = None
        if self.cancel_on_timeout:
            execution, note = await self._cancel_if_going(poller)
            message += f"; {note}"
        else:
            message += "; the execution was left going (cancel_on_timeout is off)"
        self.log.warning("%s", message)
        return event_payload(execution, Decision(Step.FINISH, EventStatus.TIMEOUT, message), execution_id=self.execution_id)

    async def _cancel_if_going(self, poller: SharedPoller) -> tuple[Execution | None, str]:
        try:
            hook = await buddy_hook(poller, self.buddy_conn_id)
            current = await hook.aget_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)
            if current.is_finished:
                return current, f"it had already ended ({current.status})"
            cancelled = await hook.acancel_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)
            return cancelled, f"cancelled {describe_execution(cancelled)}"
        except ProviderApiError as exc:
            return None, f"could not cancel it: {exc}"

    def _error(self, message: str, kind: ErrorKind | None = None) -> dict[str, Any]:
        decision = Decision(Step.FINISH, EventStatus.ERROR, message)
        payload = event_payload(None, decision, execution_id=self.execution_id)
        payload["error_kind"] = kind.value if kind is not None else None
        return payload

    async def on_kill(self) -> None:
        """Airflow 3.3+: the task was killed while deferred; cancel the execution when asked to."""
        if not self.cancel_on_kill:
            self.log.info("Task killed; Buddy execution %s left going (cancel_on_kill is off)", self.execution_id)
            return
        poller = SharedPoller.for_running_loop()
        async with poller.lease():
            _, note = await self._cancel_if_going(poller)
        self.log.warning("Task killed while waiting on Buddy execution %s: %s", self.execution_id, note)
