"""``BuddyExecutionTrigger``: waits on a Buddy execution in the triggerer, holding no worker.

The wait loop (deadline, backoff, error events, exactly one event) is :class:`PollingTrigger`'s; this
module says how to read a Buddy execution, decide, approve and cancel.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, cast

from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.links import HTML_URL_KEY, BuddyExecutionLink
from airflow_provider_buddy.models.buddy import Execution, variables_from
from airflow_provider_buddy.models.status import StatusGroup
from airflow_provider_buddy.triggers._base import Poll, PollingTrigger
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.utils.arguments import pipeline_ref, positive_int
from airflow_provider_buddy.utils.buddy_waiting import (
    DEFAULT_LOG_TAIL,
    BuddyWaitEvent,
    GateApproval,
    decide,
    describe_execution,
    event_payload,
    summary_from_event,
    with_failure_details,
)
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, Decision, EndInTriggerer, EventStatus, Step


class BuddyExecutionTrigger(PollingTrigger):
    """
    Polls one Buddy execution until it ends (or stops for a person, per ``on_approval``), then fires
    exactly one event. Transient trouble (network, 429, 5xx) never ends the wait; 401/403/404 end it
    with an ``error`` event that says what to fix.

    Event payload: a :class:`~airflow_provider_buddy.utils.buddy_waiting.BuddyWaitEvent` (``status``:
    success, waiting_for_approval, failed, cancelled, skipped, timeout or error; the execution, its link,
    the gate, outputted variables, and on failure the failed action, its error and log tail).

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

    service = "Buddy"
    noun = "execution"
    hook_class = BuddyHook

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
        resume_not_before: float | None = None,
        end_in_triggerer: EndInTriggerer | None = None,
        skipped_is_success: bool = False,
        log_tail: int = DEFAULT_LOG_TAIL,
        approved_action_ids: Sequence[str] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.buddy_conn_id = self.conn_id = buddy_conn_id
        self.project_name = project_name
        # ints, except for a task starting in the triggerer: its templates are rendered into these before run()
        self.pipeline_id: Any = _int_or_raw(pipeline_id)
        self.execution_id: Any = _int_or_raw(execution_id)
        self.workspace = workspace
        self.poll_interval = float(poll_interval)
        self.on_approval = ApprovalPolicy.parse(on_approval).value
        self.approval_variables = [v.to_api() for v in variables_from(approval_variables)] or None
        if self.approval_variables and any(v.get("encrypted") for v in self.approval_variables):
            raise ValueError("approval_variables: encrypted values must not be given to a trigger (they would be serialized)")
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.resume_not_before = resume_not_before
        self.end_in_triggerer = end_in_triggerer
        self.skipped_is_success = skipped_is_success
        self.log_tail = log_tail
        self.approved_action_ids = sorted(approved_action_ids or [])
        self._approved: set[str] = set(self.approved_action_ids)
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
                **self.ending_kwargs(),
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
        return ("buddy", self.buddy_conn_id, self.workspace, self.project_name, self.pipeline_id, self.execution_id)

    async def prepare(self, poller: SharedPoller) -> None:
        """The execution id as a number and the pipeline's numeric id (an identifier or name is looked up once)."""
        self.execution_id = positive_int(self.execution_id, "execution_id")
        ref = pipeline_ref(self.pipeline_id)
        if not isinstance(ref, int):
            hook: BuddyHook = await self.shared_hook(poller)
            pipeline = await hook.afind_pipeline(self.project_name, ref, workspace=self.workspace)
            self.log.info("Pipeline %r is pipeline %s (%s)", ref, pipeline.id, pipeline.name)
            ref = pipeline.id
        self.pipeline_id = ref

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
        execution: Execution = await self.read_watched(
            poller, lambda hook: hook.aget_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)
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
            approval = GateApproval.of(execution, decision, variables_from(self.approval_variables))
            if await self._approve(poller, approval):
                self._approved.add(approval.key)
                next_in = min(self.poll_interval, 1.0)
        elif decision.message and decision.message != self._last_message:
            self.log.info("%s", decision.message)
        self._last_message = decision.message or self._last_message
        if execution.status_group is StatusGroup.UNKNOWN and execution.status not in self._unknown_seen:
            self._unknown_seen.add(execution.status)  # logged once per status, not every poll
            self.log.info("Buddy reported status %r, unknown to this provider; reading it as still going", execution.status)
        return Poll.again(next_in)

    async def _approve(self, poller: SharedPoller, approval: GateApproval) -> bool:
        hook: BuddyHook = await self.shared_hook(poller)
        try:
            answer = await hook.aanswer_wait(
                self.project_name,
                self.pipeline_id,
                self.execution_id,
                approval.wait_status,
                variables=approval.variables,
                action_execution_id=approval.decision.waiting_action_execution_id,
                workspace=self.workspace,
            )
        except ProviderApiError as exc:
            done, note = approval.refused(exc)
            (self.log.info if done else self.log.warning)("%s", note)
            return done
        finally:
            poller.forget(self.read_key)
        self.log.info("%s", approval.sent(answer.operation))
        return True

    async def _finish(self, poller: SharedPoller, execution: Execution, decision: Decision) -> BuddyWaitEvent:
        payload = event_payload(execution, decision)
        if decision.status is EventStatus.FAILED and decision.waits_for is None:
            hook: BuddyHook = await self.shared_hook(poller)
            try:
                details = await hook.aget_failure_details(
                    self.project_name, self.pipeline_id, execution, tail=self.log_tail, workspace=self.workspace
                )
                with_failure_details(payload, details)
            except ProviderApiError as exc:
                self.log.warning("Could not fetch the failed action's log: %s", exc)
                failed = execution.failed_action
                payload["failed_action"] = failed.name if failed is not None else None
                payload["error_message"] = failed.error_message if failed is not None else None
        return payload

    def timeout_payload(self, current: Any, message: str) -> BuddyWaitEvent:
        """A ``timeout`` event, with the execution's last state when the cancel read it."""
        return event_payload(current, Decision.finish(EventStatus.TIMEOUT, message), execution_id=self.execution_id)

    async def read_current(self, poller: SharedPoller) -> Execution:
        """The execution as it is now."""
        hook: BuddyHook = await self.shared_hook(poller)
        return await hook.aget_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)

    async def send_cancel(self, poller: SharedPoller) -> Execution:
        """``CANCEL`` the execution."""
        hook: BuddyHook = await self.shared_hook(poller)
        return await hook.acancel_execution(self.project_name, self.pipeline_id, self.execution_id, workspace=self.workspace)

    def summary(self, event: dict[str, Any]) -> Any:
        """The wait's summary (what the task returns, or pushes to XCom ``summary``)."""
        return summary_from_event(cast("Any", event))

    def link_xcoms(self, event: dict[str, Any]) -> dict[str, Any]:
        """The "Buddy execution" link."""
        url = event.get("html_url")
        return {HTML_URL_KEY: url, BuddyExecutionLink().xcom_key: url} if url else {}

    def object_id(self, event: dict[str, Any]) -> Any:
        """The execution id."""
        return event.get("execution_id")

    def describe(self, current: Execution) -> str:
        """The execution, with its link."""
        return describe_execution(current)

    def error_payload(self, message: str, kind: ErrorKind | None) -> BuddyWaitEvent:
        """An ``error`` event naming the error kind."""
        payload = event_payload(None, Decision.finish(EventStatus.ERROR, message), execution_id=self.execution_id)
        payload["error_kind"] = kind.value if kind is not None else None
        return payload


def _int_or_raw(value: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return value
