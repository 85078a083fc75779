"""``GoRulesRunTrigger``: waits on a GoRules BRMS deployment workflow run in the triggerer, holding no worker.

The wait loop is :class:`PollingTrigger`'s (deadline, backoff, error events, exactly one event); reads go
through the triggerer's :class:`SharedPoller` (one pooled client per BRMS account, one read per run per
interval however many triggers wait on it).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast

from airflow_provider_buddy.exceptions import ErrorKind
from airflow_provider_buddy.hooks._gorules_api import run_page, run_url
from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.links import RUN_PAGE_KEY, GoRulesRunLink
from airflow_provider_buddy.models.gorules import Run
from airflow_provider_buddy.models.status import StatusGroup
from airflow_provider_buddy.triggers._base import Poll, PollingTrigger
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.utils.gorules_waiting import (
    GoRulesWaitEvent,
    decide_run,
    describe_run,
    gorules_policy,
    run_event_payload,
    run_summary,
)
from airflow_provider_buddy.utils.waiting import Decision, EndInTriggerer, EventStatus, Step

DEFAULT_CANCEL_COMMENT = "Cancelled by Airflow: the task waiting on this run was killed or passed its deadline"


class GoRulesRunTrigger(PollingTrigger):
    """
    Polls one GoRules deployment workflow run until it ends (or waits for a review, per ``on_approval``),
    then fires exactly one event. Transient trouble (network, 408, 429, 5xx) never ends the wait;
    401/403/404 end it with an ``error`` event that says what to fix.

    Event payload: ``status`` (success, waiting_for_approval, failed, cancelled, timeout, error),
    ``run_id``, ``run_status``, ``project_id``, ``release_id``, ``release``, ``run_url``, ``message``
    (with the jobs, environments and reviewers), ``waits_for``, ``waiting_environments``, ``jobs``,
    ``cancelled_by``, ``cancelled_comment``, ``end_time``.

    :param gorules_conn_id: the Airflow connection id (never a token).
    :param project_id: the BRMS project's id.
    :param run_id: the run to wait on.
    :param poll_interval: seconds between polls.
    :param on_approval: ``wait``, ``succeed`` or ``fail`` at a review gate (``approve`` is refused: the
        API has no approve call).
    :param end_time: epoch seconds; past it the trigger ends with a ``timeout`` event.
    :param cancel_on_kill: cancel the run when the task is killed while deferred (Airflow 3.3+).
    :param cancel_on_timeout: cancel the run when ``end_time`` passes.
    :param cancel_comment: the reason sent with such a cancel (the API requires one).
    """

    service = "GoRules"
    noun = "run"
    hook_class = GoRulesHook

    def __init__(
        self,
        *,
        gorules_conn_id: str,
        project_id: str,
        run_id: str,
        poll_interval: float = 10.0,
        on_approval: str = "wait",
        end_time: float | None = None,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        resume_not_before: float | None = None,
        end_in_triggerer: EndInTriggerer | None = None,
        cancel_comment: str | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.gorules_conn_id = self.conn_id = gorules_conn_id
        self.project_id = str(project_id)
        self.run_id = str(run_id)
        self.poll_interval = float(poll_interval)
        self.on_approval = gorules_policy(on_approval).value
        self.end_time = end_time
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_timeout = cancel_on_timeout
        self.resume_not_before = resume_not_before
        self.end_in_triggerer = end_in_triggerer
        self.cancel_comment = cancel_comment
        self._last_message = ""
        self._url: str | None = None
        self._page: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and plain kwargs: the connection id, never a token."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "gorules_conn_id": self.gorules_conn_id,
                "project_id": self.project_id,
                "run_id": self.run_id,
                "poll_interval": self.poll_interval,
                "on_approval": self.on_approval,
                "end_time": self.end_time,
                "cancel_on_kill": self.cancel_on_kill,
                "cancel_on_timeout": self.cancel_on_timeout,
                "cancel_comment": self.cancel_comment,
                **self.ending_kwargs(),
            },
        )

    @property
    def subject(self) -> str:
        """``GoRules run <id> of project <id>``."""
        return f"GoRules run {self.run_id} of project {self.project_id}"

    @property
    def read_key(self) -> Hashable:
        """The shared-read key of the run."""
        return ("gorules", self.gorules_conn_id, self.project_id, self.run_id)

    def describe_wait(self) -> str:
        """The line logged when the wait starts."""
        return f"Waiting in the triggerer on {self.subject} (poll every {self.poll_interval:.0f}s, on_approval={self.on_approval})"

    def resume_fields(self) -> dict[str, Any]:
        """What the task needs to resume: which run, where, until when."""
        return {"project_id": self.project_id, "run_id": self.run_id, "end_time": self.end_time, "run_url": self._url}

    def _run_url(self, hook: GoRulesHook) -> str:
        if self._url is None:
            self._url = run_url(hook.settings.base_url, self.project_id, self.run_id)
            self._page = run_page(hook.settings, self.project_id, self.run_id)
        return self._url

    async def poll(self, poller: SharedPoller) -> Poll:
        """Read the run once (shared with every waiter on it) and decide."""
        run: Run = await self.read_watched(poller, lambda hook: hook.aget_run(self.project_id, self.run_id))
        hook: GoRulesHook = await self.shared_hook(poller)
        decision = decide_run(run, gorules_policy(self.on_approval))
        if decision.step is Step.FINISH:
            return Poll.done(run_event_payload(run, decision, run_url=self._run_url(hook)))
        if decision.message and decision.message != self._last_message:
            self.log.info("%s", decision.message)
        self._last_message = decision.message or self._last_message
        if run.status_group is StatusGroup.UNKNOWN:
            self.log.info("GoRules reported run status %r, unknown to this provider; reading it as still going", run.status)
        return Poll.again()

    def error_payload(self, message: str, kind: ErrorKind | None) -> GoRulesWaitEvent:
        """An ``error`` event naming the error kind."""
        decision = Decision.finish(EventStatus.ERROR, message)
        payload = run_event_payload(None, decision, run_url=self._url, run_id=self.run_id, project_id=self.project_id)
        payload["error_kind"] = kind.value if kind is not None else None
        return payload

    def timeout_payload(self, current: Any, message: str) -> GoRulesWaitEvent:
        """A ``timeout`` event, with the run's last state when the cancel read it."""
        decision = Decision.finish(EventStatus.TIMEOUT, message)
        return run_event_payload(current, decision, run_url=self._url, run_id=self.run_id, project_id=self.project_id)

    async def read_current(self, poller: SharedPoller) -> Run:
        """The run as it is now."""
        hook: GoRulesHook = await self.shared_hook(poller)
        self._run_url(hook)
        return await hook.aget_run(self.project_id, self.run_id)

    async def send_cancel(self, poller: SharedPoller) -> Run:
        """Cancel the run with ``cancel_comment``."""
        hook: GoRulesHook = await self.shared_hook(poller)
        return await hook.acancel_run(self.project_id, self.run_id, self.cancel_comment or DEFAULT_CANCEL_COMMENT)

    def summary(self, event: dict[str, Any]) -> Any:
        """The wait's summary (what the task returns, or pushes to XCom ``summary``)."""
        return run_summary(cast("Any", event))

    def link_xcoms(self, event: dict[str, Any]) -> dict[str, Any]:
        """The "GoRules run" link."""
        return {RUN_PAGE_KEY: self._page, GoRulesRunLink().xcom_key: self._page} if self._page else {}

    def object_id(self, event: dict[str, Any]) -> Any:
        """The run id."""
        return event.get("run_id")

    def describe(self, current: Run) -> str:
        """The run, with its environments."""
        return describe_run(current)

    def ended_note(self, current: Run, cancel_sent: bool) -> str:
        """A run that shows our own cancel's comment was cancelled by us: the cancel's answer was lost."""
        if cancel_sent and current.cancelled_comment == (self.cancel_comment or DEFAULT_CANCEL_COMMENT):
            return f"cancelled {describe_run(current)} (the cancel's answer was lost; the BRMS shows the run cancelled)"
        return super().ended_note(current, cancel_sent)
