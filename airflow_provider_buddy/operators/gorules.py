"""Operators for GoRules BRMS: deploy a release to an environment (and wait for its run), cancel a run.

The deploy is safe under Airflow's retries, kills and timeouts: a retried task re-attaches to the run
its earlier try created instead of deploying again, and a killed or timed-out task cancels its run
(with a comment, as the API requires) unless ``cancel_on_kill=False``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_buddy.exceptions import (
    GoRulesApiError,
    GoRulesConnectionError,
    GoRulesError,
    GoRulesNotFoundError,
    GoRulesResponseError,
    GoRulesServerError,
)
from airflow_provider_buddy.hooks._gorules_api import require_comment, run_page, run_url
from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.links import GoRulesRunLink
from airflow_provider_buddy.models.gorules import Run
from airflow_provider_buddy.utils.arguments import ArgumentChecks, Check, default_deferrable, non_empty, optional, positive_seconds
from airflow_provider_buddy.utils.backoff import LOOKUP_ATTEMPTS
from airflow_provider_buddy.utils.cancelling import cancel_if_going_sync, cancel_unless_ended
from airflow_provider_buddy.utils.dag_cleanup import RunRecord, record_run, register_on_dag
from airflow_provider_buddy.utils.deferral import ended_in_triggerer
from airflow_provider_buddy.utils.gorules_reattach import earlier_try_run, looks_oldest_first, new_run, reaches_back
from airflow_provider_buddy.utils.gorules_task_waiting import RUN_ID_KEY, RUN_URL_KEY, GoRulesWaitingMixin
from airflow_provider_buddy.utils.gorules_waiting import describe_run, gorules_policy, run_summary_now
from airflow_provider_buddy.utils.reattach import SEARCH_DEPTH, first_try_of_generation, marked_comment, task_marker, try_number_of
from airflow_provider_buddy.utils.waiting import deadline_before_timeout

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_buddy.utils.gorules_waiting import GoRulesWaitEvent


def _required_comment(value: Any, parameter: str = "comment") -> str:
    return require_comment(value, parameter, error=ValueError)


def _text(value: Any, parameter: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{parameter} must be a string, got {value!r}")


class GoRulesBaseOperator(ArgumentChecks, BaseOperator):
    """
    What every GoRules operator shares: the connection and the project.

    Every templated argument also takes a value Airflow resolves when the task runs: ``deploy.output`` (the
    run id), a TaskFlow result (the dependency is set for you). It is checked once resolved, before anything
    is sent.

    :param project_id: the BRMS project's id (templated).
    :param gorules_conn_id: the Airflow connection.
    """

    ui_color = "#3b5bdb"
    argument_checks: ClassVar[Mapping[str, Check]] = {"project_id": non_empty}
    operator_extra_links = (GoRulesRunLink(),)

    def __init__(self, *, project_id: str, gorules_conn_id: str = GoRulesHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project_id = project_id
        self.gorules_conn_id = gorules_conn_id
        self.check_given_arguments("project_id")

    @cached_property
    def hook(self) -> GoRulesHook:
        """The GoRules hook."""
        return GoRulesHook(self.gorules_conn_id)


class GoRulesDeployReleaseOperator(GoRulesWaitingMixin, GoRulesBaseOperator):
    """
    Deploys a release to one environment and (by default) waits for the resulting deployment workflow
    run, in the worker or deferred.

    Pushes XCom ``run_id`` and ``run_url`` as soon as the run is known, before any waiting, and returns
    the run id; the wait's summary (status, release, jobs with environments and reviewers) goes to XCom
    ``summary``. The deploy answer's shape is not documented: a run object, a ``{"id"}`` reference, or
    anything else (the run is then found by listing the project's runs for this release). A retried
    task re-attaches to the run its earlier try created instead of deploying again.

    :param release_id: the release to deploy (templated).
    :param environment_id: the target environment's id (templated).
    :param comment: a note for the deployment (templated); a re-attach marker is appended.
    :param wait_for_completion: wait for the run to end (else return once it is known).
    :param deferrable: wait in the triggerer, holding no worker slot.
    :param poll_interval: seconds between status checks.
    :param on_approval: at a review gate: ``wait`` for a reviewer in the BRMS, ``succeed`` at once (the
        DAG's own gate comes next), or ``fail``. ``approve`` is refused: the API has no approve call.
    :param reattach_on_retry: on a later try, wait on the run an earlier try created.
    :param cancel_on_kill: cancel the run when the task is killed or times out while it is still going.
    :param cancel_on_dag_failure: when the DAG run fails (whatever failed it: a later task, Airflow itself, a timeout,
        a person), cancel this task's run if it is still going (registered once as the DAG's failure callback).
    """

    template_fields: Sequence[str] = ("project_id", "release_id", "environment_id", "comment")
    argument_checks: ClassVar[Mapping[str, Check]] = {
        **GoRulesBaseOperator.argument_checks,
        "release_id": non_empty,
        "environment_id": non_empty,
        "comment": optional(_text),
    }

    def __init__(
        self,
        *,
        release_id: str,
        environment_id: str,
        comment: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        on_approval: str = "wait",
        reattach_on_retry: bool = True,
        cancel_on_kill: bool = True,
        cancel_on_dag_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.release_id = release_id
        self.environment_id = environment_id
        self.comment = comment
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.on_approval = gorules_policy(on_approval).value
        self.reattach_on_retry = reattach_on_retry
        self.cancel_on_kill = cancel_on_kill
        self.cancel_on_dag_failure = cancel_on_dag_failure
        if cancel_on_dag_failure:
            register_on_dag(self)
        self.check_given_arguments("release_id", "environment_id", "comment")
        self._run_id: str | None = None
        self._cancel_comment: str | None = None

    # ---- deploy or re-attach ----------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Deploy (or re-attach to the earlier try's run), record the run, then wait as configured."""
        self.check_arguments()
        project_id = non_empty(self.project_id, "project_id")
        release_id = non_empty(self.release_id, "release_id")
        environment_id = non_empty(self.environment_id, "environment_id")
        marker = task_marker(context)
        ti = context["ti"]
        self._cancel_comment = f"Cancelled by Airflow: task {ti.dag_id}.{ti.task_id} was killed or timed out {marker}"
        retry_since = self._dag_run_start(context) if getattr(ti, "try_number", 1) > 1 else None
        before = self._recent_runs(project_id, since=retry_since if self.reattach_on_retry else None)
        run: Run | None = None
        try_number = try_number_of(ti)
        if self.reattach_on_retry:
            generation = (first_try_of_generation(ti, self.retries), try_number)
            run, why = earlier_try_run(before, release_id, environment_id, marker, retry_since=retry_since, generation=generation)
            if run is not None:
                self.log.info("Re-attaching to %s instead of deploying again: %s (%s)", describe_run(run), why, run.status)
        if run is None:
            comment = marked_comment(self.comment, marker, context, try_number=try_number)
            run = self._deploy(project_id, release_id, environment_id, comment, marker, {r.id for r in before})
        self._started(context, project_id, run)
        if not self.wait_for_completion:
            return run.id
        summary = self._wait(context, project_id, run)
        ti.xcom_push(key="summary", value=summary)
        return run.id

    @staticmethod
    def _dag_run_start(context: Context) -> datetime | None:
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None)
        return started if isinstance(started, datetime) and started.tzinfo is not None else None

    def _deploy(self, project_id: str, release_id: str, environment_id: str, comment: str, marker: str, known: set[str]) -> Run:
        try:
            result = self.hook.deploy_release(project_id, release_id, environment_id, comment)
        except (GoRulesConnectionError, GoRulesResponseError, GoRulesServerError) as exc:
            # The POST may have reached the BRMS (a lost, garbled or 5xx answer): look for the run it would have
            # created before failing. Failing with that run going would leave it unwatched (or, on a retry after
            # it ended, deploy the release a second time).
            self.log.warning("The deploy's answer was lost (%s); looking for the run it may have created", exc)
            found = self._find_new_run(project_id, known, release_id, environment_id, marker)
            if found is None:
                raise
            self.log.info("Found %s: the deploy did reach GoRules", describe_run(found))
            return found
        run = result.run
        if run is None and result.run_id:
            try:
                run = self.hook.get_run(project_id, result.run_id)
            except GoRulesNotFoundError:
                self.log.info("The deploy answered id %s, which is not a run; looking the run up", result.run_id)
            except GoRulesError as exc:
                if not exc.transient:
                    raise
                # The deploy is done and named its run: a failed read must not fail the task (the wait reads it again).
                self.log.warning("Could not read run %s yet (%s); waiting on it by its id", result.run_id, exc)
                run = Run(id=result.run_id, release_id=release_id)
        if run is None:
            self.log.info(
                "The deploy's answer does not name the run (keys: %s); looking it up among the project's runs", list(result.raw_keys)
            )
            run = self._find_new_run(project_id, known, release_id, environment_id, marker)
        if run is None:
            raise GoRulesResponseError(
                f"GoRules accepted the deploy of release {release_id} to environment {environment_id} (project {project_id}), "
                "but no new run for it appeared in the project's runs; check the deployment in the BRMS UI"
            )
        self.log.info("Deployed: %s (%s)", describe_run(run), run.status)
        return run

    def _find_new_run(self, project_id: str, known: set[str], release_id: str, environment_id: str, marker: str) -> Run | None:
        """The run the deploy created, listing the project's runs a few times (it may show up a moment later).
        Transient trouble listing them does not end the search early: failing now would leave that run unwatched."""
        pause = min(self.poll_interval, 1.0)
        trouble: GoRulesError | None = None
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                found = new_run(self._recent_runs(project_id), known, release_id, environment_id, marker)
            except GoRulesError as exc:
                if not exc.transient:
                    raise
                self.log.warning("Listing the project's runs failed (%s); trying again", exc)
                trouble, found = exc, None
            else:
                trouble = None
                if found is not None:
                    return found
            if attempt + 1 < LOOKUP_ATTEMPTS:
                time.sleep(pause)
        if trouble is not None:
            raise trouble
        return None

    def _recent_runs(self, project_id: str, *, since: datetime | None = None) -> list[Run]:
        """
        The project's newest runs: every run when the API lists them oldest first and there are many, or when
        ``since`` (a retry: the DAG run's start) is given and the newest ones do not reach back to it — in a busy
        project an earlier try's run may be older than the newest :data:`SEARCH_DEPTH`, and missing it would deploy
        the release a second time.
        """
        runs = self.hook.list_runs(project_id, max_items=SEARCH_DEPTH)
        if len(runs) >= SEARCH_DEPTH and (looks_oldest_first(runs) or not reaches_back(runs, since)):
            runs = self.hook.list_runs(project_id)
        return runs

    def _started(self, context: Context, project_id: str, run: Run) -> None:
        """Record the run at once, before any waiting."""
        self._run_id = run.id
        ti = context["ti"]
        ti.xcom_push(key=RUN_ID_KEY, value=run.id)
        ti.xcom_push(key=RUN_URL_KEY, value=self.run_url(project_id, run.id))
        self.show_run(context, project_id, run.id)
        comment = f"Cancelled by Airflow: the DAG run of task {ti.dag_id}.{ti.task_id} failed"
        record_run(context, RunRecord(service="gorules", conn_id=self.gorules_conn_id, project=project_id, id=run.id, comment=comment))

    # ---- wait --------------------------------------------------------------------------------------
    def _wait(self, context: Context, project_id: str, run: Run) -> Any:
        if self.deferrable:
            return self.first_look_or_defer(
                project_id,
                run.id,
                self.poll_interval,
                end_time=deadline_before_timeout(self.execution_timeout, context),
                cancel_on_timeout=self.cancel_on_kill,
                cancel_comment=self._cancel_comment,
            )
        return self.wait_sync(project_id, run.id, self.poll_interval)

    def execute_complete(self, context: Context, event: GoRulesWaitEvent, **_: Any) -> Any:
        """Called when the trigger fires; returns the run id (the summary goes to XCom ``summary``)."""
        if ended_in_triggerer(event):
            run_id = context["ti"].xcom_pull(task_ids=self.task_id, key=RUN_ID_KEY)
            event = self.event_of_ended_task(non_empty(self.project_id, "project_id"), non_empty(run_id, "run_id"))
        self._run_id = event.get("run_id")
        summary = self.finish_wait(event)
        context["ti"].xcom_push(key="summary", value=summary)
        return event.get("run_id")

    def on_kill(self) -> None:
        """The task was killed or timed out on the worker: cancel the run if still going (unless told not to)."""
        run_id = self._run_id
        if run_id is None:
            return
        if not self.cancel_on_kill:
            self.log.info("Task killed; GoRules run %s left going (cancel_on_kill=False)", run_id)
            return
        project_id = non_empty(self.project_id, "project_id")
        comment = self._cancel_comment or "Cancelled by Airflow: task killed or timed out"
        cancel_if_going_sync(
            self.log,
            f"GoRules run {run_id}",
            lambda: self.hook.get_run(project_id, run_id),
            lambda: self.hook.cancel_run(project_id, run_id, comment),
            describe_run,
            pause=min(self.poll_interval, 1.0),
        )


class GoRulesCancelRunOperator(GoRulesBaseOperator):
    """
    Cancels an in-progress or waiting run, with the reason the API requires. A run that already ended is
    logged, not an error, unless ``fail_if_finished=True``. Returns the run's summary.

    :param run_id: the run (templated; ``deploy.output`` of a deploy operator works).
    :param comment: why it is cancelled (templated; required: empty or missing fails at DAG parse time).
    :param fail_if_finished: fail when the run had already ended.
    """

    template_fields: Sequence[str] = ("project_id", "run_id", "comment")
    argument_checks: ClassVar[Mapping[str, Check]] = {
        **GoRulesBaseOperator.argument_checks,
        "run_id": non_empty,
        "comment": _required_comment,
    }

    def __init__(self, *, run_id: str, comment: str | None = None, fail_if_finished: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.comment = comment
        self.fail_if_finished = fail_if_finished
        self.check_given_arguments("run_id", "comment")

    def execute(self, context: Context) -> Any:
        """Cancel unless already ended; returns the run's summary."""
        self.check_arguments()
        project_id = non_empty(self.project_id, "project_id")
        run_id = non_empty(self.run_id, "run_id")
        comment = _required_comment(self.comment)
        url = run_url(self.hook.settings.base_url, project_id, run_id)
        GoRulesRunLink.persist(context, run_page(self.hook.settings, project_id, run_id))
        run = cancel_unless_ended(
            self.log,
            lambda: self.hook.get_run(project_id, run_id),
            lambda: self.hook.cancel_run(project_id, run_id, comment),
            describe_run,
            refused=GoRulesApiError,
            fail_if_finished=self.fail_if_finished,
            note=f": {comment}",
        )
        return run_summary_now(run, url)
