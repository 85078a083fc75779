"""What the GoRules sensor and operators share on the worker: waiting on a run synchronously or by
deferring to :class:`GoRulesRunTrigger`, and turning the wait's one event into a return value or a
typed failure. Both modes go through :func:`decide_run` and end in :meth:`GoRulesWaitingMixin.finish_wait`,
so they give the same results.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_buddy.backoff import backoff_delay, look_or_wait_out
from airflow_provider_buddy.gorules_errors import (
    GoRulesReviewRequiredError,
    GoRulesRunCancelledError,
    GoRulesRunError,
    GoRulesRunFailedError,
    GoRulesWaitTimeoutError,
)
from airflow_provider_buddy.gorules_waiting import decide_run, gorules_policy, run_event_payload, run_summary
from airflow_provider_buddy.hooks.gorules_api import run_url
from airflow_provider_buddy.waiting import Decision, EventStatus, Step

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.gorules import GoRulesHook

TIMEOUT_MARGIN = 5.0
RUN_ID_KEY = "run_id"
RUN_URL_KEY = "run_url"


def deadline_before_timeout(execution_timeout: timedelta | None, context: Any, margin: float = TIMEOUT_MARGIN) -> float | None:
    """
    When the task's ``execution_timeout`` runs out (epoch seconds), a little early so a wait can cancel first.

    :param execution_timeout: the task's timeout, or None.
    :param context: the task's context (its ``ti.start_date`` is the start).
    :param margin: seconds to end early (at most 5% of the timeout).
    """
    if execution_timeout is None:
        return None
    started = getattr(context["ti"], "start_date", None)
    begin = started.timestamp() if isinstance(started, datetime) else time.time()
    seconds = execution_timeout.total_seconds()
    return begin + seconds - min(margin, seconds * 0.05)


class GoRulesWaitingMixin:
    """
    Waiting on one GoRules run from a task, in either mode. The host class sets the attributes below
    in its ``__init__`` and provides ``hook``, ``log`` and ``defer``.
    """

    gorules_conn_id: str
    on_approval: str
    cancel_on_kill: bool
    log: Any

    if TYPE_CHECKING:

        @property
        def hook(self) -> GoRulesHook: ...

        def defer(
            self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: timedelta | int | float | None = None
        ) -> NoReturn: ...

    def run_url(self, project_id: str, run_id: str) -> str:
        """The run's address under the connection's API root."""
        return run_url(self.hook.settings.base_url, project_id, run_id)

    def poll_once(self, project_id: str, run_id: str) -> dict[str, Any] | None:
        """Read the run once; return the end event's payload, or None to keep waiting."""
        run = self.hook.get_run(project_id, run_id)
        decision = decide_run(run, gorules_policy(self.on_approval))
        if decision.step is Step.FINISH:
            return run_event_payload(run, decision, run_url=self.run_url(project_id, run.id), project_id=project_id)
        last = getattr(self, "_last_wait_message", "")
        if decision.message and decision.message != last:
            self.log.info("%s", decision.message)
            self._last_wait_message = decision.message
        return None

    def wait_sync(self, context: Any, project_id: str, run_id: str, poll_interval: float, deadline: float | None = None) -> Any:
        """Poll from the worker until the wait ends (transient trouble backs off, never ends it); returns the summary or raises."""
        streak = 0
        while True:
            payload, streak, retry_after = look_or_wait_out(
                self.log, lambda: self.poll_once(project_id, run_id), streak, f"GoRules run {run_id}"
            )
            if payload is not None:
                return self.finish_wait(context, payload)
            if deadline is not None and time.time() >= deadline:
                message = f"Gave up waiting on GoRules run {run_id}: the deadline passed"
                timeout = Decision(Step.FINISH, EventStatus.TIMEOUT, message)
                return self.finish_wait(context, run_event_payload(None, timeout, run_id=run_id, project_id=project_id))
            time.sleep(backoff_delay(poll_interval, streak, retry_after) if streak else poll_interval)

    def defer_wait(
        self,
        project_id: str,
        run_id: str,
        poll_interval: float,
        *,
        end_time: float | None = None,
        cancel_on_timeout: bool = False,
        cancel_comment: str | None = None,
    ) -> NoReturn:
        """Hand the wait to the triggerer; the task resumes in ``execute_complete`` with the event."""
        from airflow_provider_buddy.triggers.gorules import GoRulesRunTrigger

        self.defer(
            trigger=GoRulesRunTrigger(
                gorules_conn_id=self.gorules_conn_id,
                project_id=project_id,
                run_id=run_id,
                poll_interval=poll_interval,
                on_approval=self.on_approval,
                end_time=end_time,
                cancel_on_kill=self.cancel_on_kill,
                cancel_on_timeout=cancel_on_timeout,
                cancel_comment=cancel_comment,
            ),
            method_name="execute_complete",
        )

    def finish_wait(self, context: Any, event: dict[str, Any]) -> Any:
        """Turn the wait's event into the task's return value, or raise the matching error."""
        status = event.get("status")
        message = str(event.get("message") or "")
        ids = {"run_id": event.get("run_id"), "run_url": event.get("run_url"), "run_status": event.get("run_status")}
        text = _with_link(message, event)
        if status == EventStatus.SUCCESS.value:
            self.log.info("%s", message)
            return run_summary(event)
        if status == EventStatus.WAITING_FOR_APPROVAL.value:
            self.log.info("%s; finishing so the DAG's own gate can answer it (on_approval='succeed')", message)
            return run_summary(event)
        if status == EventStatus.FAILED.value:
            if event.get("waits_for"):
                raise GoRulesReviewRequiredError(text, **ids)
            raise GoRulesRunFailedError(text, **ids)
        if status == EventStatus.CANCELLED.value:
            raise GoRulesRunCancelledError(text, **ids)
        if status == EventStatus.TIMEOUT.value:
            raise GoRulesWaitTimeoutError(text, **ids)
        raise GoRulesRunError(text or f"the wait ended with an unexpected event {status!r}", **ids)


def _with_link(message: str, event: dict[str, Any]) -> str:
    url = event.get("run_url")
    return f"{message} ({url})" if url and url not in message else message
