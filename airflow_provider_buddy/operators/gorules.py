"""Operators for GoRules BRMS: deploy a release to an environment (and wait for its run), cancel a run.

The deploy is safe under Airflow's retries, kills and timeouts: a retried task re-attaches to the run
its earlier try created instead of deploying again, and a killed or timed-out task cancels its run
(with a comment, as the API requires) unless ``cancel_on_kill=False``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_buddy.exceptions import (
    ErrorKind,
    GoRulesApiError,
    GoRulesChangeRequestError,
    GoRulesConfigurationError,
    GoRulesConnectionError,
    GoRulesError,
    GoRulesNotFoundError,
    GoRulesResponseError,
    GoRulesServerError,
)
from airflow_provider_buddy.hooks._gorules_api import require_comment, run_page, run_url
from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.links import GoRulesRunLink
from airflow_provider_buddy.models.gorules import ChangeRequestRef, Environment, Run
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


CHANGE_REQUEST_ID_KEY = "change_request_id"
"""The XCom a deploy that made a change request records its id under."""
ENVIRONMENT_ID_KEY = "environment_id"
"""The XCom the deploy records the environment's id (as resolved) under."""
CHANGE_REQUEST_OUTCOMES = ("fail", "succeed")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def match_environment(environments: list[Environment], wanted: str, project_id: str) -> Environment:
    """
    The environment ``wanted`` names: its id, else its key, else its name (exactly, then ignoring case). None or
    several: :class:`GoRulesConfigurationError` listing the project's environments.
    """
    text = wanted.strip()
    for matches in (
        [env for env in environments if env.id == text],
        [env for env in environments if env.key == text],
        [env for env in environments if env.name == text],
        [env for env in environments if text.lower() in ((env.key or "").lower(), (env.name or "").lower())],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = "; ".join(env.describe() for env in matches)
            raise GoRulesConfigurationError(
                f"environment_id {wanted!r}: {len(matches)} environments of project {project_id} match it ({listed}); give the id"
            )
    listed = "; ".join(f"{env.label}, id {env.id}" for env in environments) or "none"
    raise GoRulesConfigurationError(
        f"environment_id {wanted!r}: no environment of project {project_id} has that id, key or name. Its environments: {listed}"
    )


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
    ``summary``. The deploy answer's shape is not documented: a run object, a change request, a ``{"id"}`` reference, or
    anything else (the change request is then looked for on the release, the run among the project's runs). A retried
    task re-attaches to the run its earlier try created instead of deploying again.

    :param release_id: the release to deploy (templated).
    :param environment_id: the target environment: its id, key or name (templated); resolved through the project's
        environments list (one call), and the task logs which environment that is.
    :param comment: a note for the deployment (templated); a re-attach marker is appended.
    :param wait_for_completion: wait for the run to end (else return once it is known).
    :param deferrable: wait in the triggerer, holding no worker slot.
    :param poll_interval: seconds between status checks.
    :param on_approval: at a review gate: ``wait`` for a reviewer in the BRMS, ``succeed`` at once (the
        DAG's own gate comes next), or ``fail``. ``approve`` is refused: the API documents no approve call.
    :param on_change_request: when the deploy makes a change request (the environment requires approval) instead of a
        run: ``fail`` (default; the task fails without retrying, naming the change request) or ``succeed`` (the task
        returns the change request's id). Either way XCom ``change_request_id`` and ``summary`` name it.
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
        on_change_request: str = "fail",
        reattach_on_retry: bool = True,
        cancel_on_kill: bool = True,
        cancel_on_dag_failure: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_change_request not in CHANGE_REQUEST_OUTCOMES:
            raise ValueError(f"on_change_request must be one of {', '.join(map(repr, CHANGE_REQUEST_OUTCOMES))}, got {on_change_request!r}")
        self.on_change_request = on_change_request
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
        environment = self._resolve_environment(project_id, non_empty(self.environment_id, "environment_id"))
        environment_id = environment.id if isinstance(environment, Environment) else environment
        known_requests = {cr.id for cr in environment.change_requests} if isinstance(environment, Environment) else None
        marker = task_marker(context)
        ti = context["ti"]
        ti.xcom_push(key=ENVIRONMENT_ID_KEY, value=environment_id)
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
            outcome = self._deploy(project_id, release_id, environment_id, comment, marker, {r.id for r in before}, known_requests)
            if isinstance(outcome, ChangeRequestRef):
                label = environment.label if isinstance(environment, Environment) else environment_id
                return self._change_request_made(context, project_id, release_id, environment_id, label, outcome)
            run = outcome
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

    def _resolve_environment(self, project_id: str, wanted: str) -> Environment | str:
        """
        The environment ``wanted`` (an id, key or name) names, from the project's environments (one call), logged. An
        id is used as given when the environments cannot be listed (a token without that permission, a BRMS without
        the call): the deploy itself then checks it.
        """
        try:
            environments = self.hook.list_environments(project_id)
        except GoRulesError as exc:
            if _UUID.match(wanted.strip()) and exc.kind in (ErrorKind.PERMISSION, ErrorKind.NOT_FOUND, ErrorKind.CLIENT):
                self.log.warning(
                    "Could not list the environments of project %s (%s); deploying to environment id %s as given", project_id, exc, wanted
                )
                return wanted.strip()
            raise
        environment = match_environment(environments, wanted, project_id)
        self.log.info("environment_id %r is environment %s", wanted, environment.describe())
        return environment

    def _deploy(
        self,
        project_id: str,
        release_id: str,
        environment_id: str,
        comment: str,
        marker: str,
        known: set[str],
        known_requests: set[str] | None,
    ) -> Run | ChangeRequestRef:
        """Deploy; the run it started, or the change request it made instead (the environment requires approval)."""
        try:
            result = self.hook.deploy_release(project_id, release_id, environment_id, comment)
        except (GoRulesConnectionError, GoRulesResponseError, GoRulesServerError) as exc:
            # The POST may have reached the BRMS (a lost, garbled or 5xx answer): look for the run it would have
            # created before failing. Failing with that run going would leave it unwatched (or, on a retry after
            # it ended, deploy the release a second time).
            self.log.warning("The deploy's answer was lost (%s); looking for the run it may have created", exc)
            found = self._find_new_run(project_id, known, release_id, environment_id, marker)
            if found is None:
                request = self._find_change_request(project_id, release_id, environment_id, known_requests)
                if request is None:
                    raise
                return request
            self.log.info("Found %s: the deploy did reach GoRules", describe_run(found))
            return found
        if result.change_request is not None:
            return result.change_request
        run = result.run
        if run is None and result.run_id:
            try:
                run = self.hook.get_run(project_id, result.run_id)
            except GoRulesNotFoundError:
                self.log.info(
                    "The deploy answered id %s, which is not a run; looking for it among the release's change requests", result.run_id
                )
                request = self._find_change_request(project_id, release_id, environment_id, None, wanted_id=result.run_id)
                if request is not None:
                    return request
                self.log.info("Id %s is no change request either; looking the run up among the project's runs", result.run_id)
            except GoRulesError as exc:
                if not exc.transient:
                    raise
                # The deploy is done and named its run: a failed read must not fail the task (the wait reads it again).
                self.log.warning("Could not read run %s yet (%s); waiting on it by its id", result.run_id, exc)
                run = Run(id=result.run_id, release_id=release_id)
        if run is None:
            if result.run_id is None:
                self.log.info(
                    "The deploy's answer names nothing (keys: %s); looking for a new change request, then the run", list(result.raw_keys)
                )
                request = self._find_change_request(project_id, release_id, environment_id, known_requests)
                if request is not None:
                    return request
                self.log.info("No new change request; looking the run up among the project's runs")
            run = self._find_new_run(project_id, known, release_id, environment_id, marker)
        if run is None:
            raise GoRulesResponseError(
                f"GoRules accepted the deploy of release {release_id} to environment {environment_id} (project {project_id}), "
                "but no new run for it appeared in the project's runs, nor a change request on the release; check the "
                "deployment in the BRMS UI"
            )
        self.log.info("Deployed: %s (%s)", describe_run(run), run.status)
        return run

    def _find_change_request(
        self, project_id: str, release_id: str, environment_id: str, known: set[str] | None, *, wanted_id: str | None = None
    ) -> ChangeRequestRef | None:
        """
        The change request the deploy made, read from the release's ``changeRequests`` (the one documented place): the
        one with ``wanted_id``, else a pending one for this environment that was not among ``known`` (the environment's
        change requests before the deploy; None when they could not be listed). Trouble reading it is logged, not raised:
        the run is looked for next.
        """
        try:
            release = self.hook.get_release(project_id, release_id)
        except GoRulesError as exc:
            self.log.warning("Could not read release %s to look for a change request (%s)", release_id, exc)
            return None
        for request in release.change_requests:
            if wanted_id is not None:
                mine = request.id == wanted_id
            else:
                mine = request.is_pending and request.targets(environment_id) and (known is None or request.id not in known)
            if mine:
                return request.model_copy(update={"release_id": request.release_id or release_id})
        return None

    def _change_request_made(
        self, context: Context, project_id: str, release_id: str, environment_id: str, label: str, request: ChangeRequestRef
    ) -> Any:
        """The deploy made a change request instead of a run: record it, then succeed or fail (not retried) as told."""
        summary = {
            **request.summary(),
            "release_id": request.release_id or release_id,
            "environment_id": environment_id,
            "environment": label,
            "project_id": project_id,
        }
        ti = context["ti"]
        ti.xcom_push(key=CHANGE_REQUEST_ID_KEY, value=request.id)
        ti.xcom_push(key="summary", value=summary)
        message = (
            f"GoRules made change request {request.id} ({request.status or 'status not given'}) to deploy release {release_id} "
            f"to {label} (project {project_id}) instead of starting a run: the environment requires approval. The deployment "
            "happens once the request is approved in the BRMS (Requests)"
        )
        if self.on_change_request == "succeed":
            self.log.info("%s; finishing with its id (on_change_request='succeed')", message)
            return request.id
        raise GoRulesChangeRequestError(
            f"{message}; on_change_request='fail', so the task fails, without retrying (a retry would make another request)",
            change_request_id=request.id,
        )

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
