"""What the GoRules sensor and operators share on the worker: waiting on a run synchronously or by
deferring to :class:`GoRulesRunTrigger`, and turning the wait's one event into a return value or a
typed failure. Both modes go through :func:`decide_run` and end in :meth:`GoRulesWaitingMixin.finish_wait`,
so they give the same results.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow_provider_buddy.exceptions import (
    GoRulesReviewRequiredError,
    GoRulesRunCancelledError,
    GoRulesRunError,
    GoRulesRunFailedError,
    GoRulesWaitTimeoutError,
)
from airflow_provider_buddy.hooks._gorules_api import run_page, run_url
from airflow_provider_buddy.links import GoRulesRunLink
from airflow_provider_buddy.utils.backoff import look_or_wait_out, wait_in_worker
from airflow_provider_buddy.utils.deferral import trigger_ending
from airflow_provider_buddy.utils.gorules_waiting import (
    GoRulesWaitEvent,
    GoRulesWaitSummary,
    decide_run,
    gorules_policy,
    run_event_payload,
    run_summary,
)
from airflow_provider_buddy.utils.waiting import Decision, EventStatus, Step, end_of_wait, with_link

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.gorules import GoRulesHook

RUN_ID_KEY = "run_id"
RUN_URL_KEY = "run_url"


class GoRulesWaitingMixin:
    """
    Waiting on one GoRules run from a task, in either mode. The host class sets the attributes below
    in its ``__init__`` and provides ``hook``, ``log`` and ``defer``.
    """

    gorules_conn_id: str
    on_approval: str
    cancel_on_kill: bool
    log: Any
    wait_returns: ClassVar[str] = "id"
    """What the task returns when its wait ends well: the run ``"id"`` (operators) or the ``"summary"`` (sensor)."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> GoRulesHook: ...

        def defer(
            self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: timedelta | int | float | None = None
        ) -> NoReturn: ...

    def show_run(self, context: Any, project_id: str, run_id: str) -> None:
        """Store the task's "GoRules run" link at once, so the UI shows it while the task waits."""
        GoRulesRunLink.persist(context, run_page(self.hook.settings, project_id, run_id))

    def run_url(self, project_id: str, run_id: str) -> str:
        """The run's address under the connection's API root."""
        return run_url(self.hook.settings.base_url, project_id, run_id)

    def poll_once(self, project_id: str, run_id: str) -> GoRulesWaitEvent | None:
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

    def wait_sync(self, project_id: str, run_id: str, poll_interval: float, deadline: float | None = None) -> GoRulesWaitSummary:
        """Poll from the worker until the wait ends (transient trouble backs off, never ends it); returns the summary or raises."""
        subject = f"GoRules run {run_id}"
        payload = wait_in_worker(self.log, lambda: self.poll_once(project_id, run_id), subject, poll_interval, deadline)
        if payload is None:
            timeout = Decision.deadline_passed(subject)
            payload = run_event_payload(None, timeout, run_id=run_id, project_id=project_id)
        return self.finish_wait(payload)

    def first_look_or_defer(
        self,
        project_id: str,
        run_id: str,
        poll_interval: float,
        *,
        end_time: float | None,
        cancel_on_timeout: bool = False,
        cancel_comment: str | None = None,
    ) -> GoRulesWaitSummary:
        """Look once (a run already ended or at its review needs no triggerer), else hand the wait to the triggerer.
        Transient trouble on this look defers too: the triggerer looks again."""
        payload, _, _ = look_or_wait_out(self.log, lambda: self.poll_once(project_id, run_id), 0, f"GoRules run {run_id}")
        if payload is not None:
            return self.finish_wait(payload)
        self.defer_wait(
            project_id, run_id, poll_interval, end_time=end_time, cancel_on_timeout=cancel_on_timeout, cancel_comment=cancel_comment
        )

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
                **trigger_ending(self, returns=self.wait_returns),
            ),
            method_name="execute_complete",
        )

    def event_of_ended_task(self, project_id: str, run_id: str) -> GoRulesWaitEvent:
        """The event of a wait its trigger ended in the triggerer, read again (``dag.test()`` resumes such a task with
        only the state's name): the run ended well, so one look gives the same event."""
        payload = self.poll_once(project_id, run_id)
        if payload is None:
            raise GoRulesRunError(f"GoRules run {run_id}: the trigger ended the task, but the run reads as still going")
        return payload

    def finish_wait(self, event: GoRulesWaitEvent) -> GoRulesWaitSummary:
        """Turn the wait's final event into the task's return value, or raise the matching error."""
        return end_of_wait(self.log, event, run_summary, run_wait_error)


def run_wait_error(event: GoRulesWaitEvent) -> GoRulesRunError:
    """The error a wait that ended badly fails its task with (the message names the jobs, environments and reviewers)."""
    status = event.get("status")
    text = with_link(str(event.get("message") or ""), event.get("run_url"))
    ids: dict[str, Any] = {"run_id": event.get("run_id"), "run_url": event.get("run_url"), "run_status": event.get("run_status")}
    if status == EventStatus.FAILED.value:
        return (GoRulesReviewRequiredError if event.get("waits_for") else GoRulesRunFailedError)(text, **ids)
    if status == EventStatus.CANCELLED.value:
        return GoRulesRunCancelledError(text, **ids)
    if status == EventStatus.TIMEOUT.value:
        return GoRulesWaitTimeoutError(text, **ids)
    return GoRulesRunError(text or f"the wait ended with an unexpected event {status!r}", **ids)
