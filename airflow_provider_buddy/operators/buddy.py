"""Operators for Buddy.Works: run a pipeline, start a scheduled run now, cancel / retry / approve an execution, clear a
cache.

Each is safe under Airflow's retries, kills and timeouts: a retried run task re-attaches to the run
its earlier try started instead of starting another, and a killed or timed-out task cancels its run
unless ``cancel_on_kill=False``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator
from pydantic import ValidationError

from airflow_provider_buddy.exceptions import (
    BuddyApiError,
    BuddyConnectionError,
    BuddyError,
    BuddyResponseError,
    BuddyServerError,
)
from airflow_provider_buddy.links import EXECUTION_ID_KEY, BuddyExecutionLink
from airflow_provider_buddy.models.status import StatusGroup, WaitKind
from airflow_provider_buddy.models.validation import describe_validation_error
from airflow_provider_buddy.utils.arguments import (
    BUDDY_DEFAULT_CONN_ID,
    Check,
    check_bool,
    default_deferrable,
    non_negative_int,
    optional,
    positive_int,
    positive_seconds,
    resolved_later,
)
from airflow_provider_buddy.utils.backoff import LOOKUP_ATTEMPTS
from airflow_provider_buddy.utils.buddy_target import EXECUTION_CHECKS, TARGET_CHECKS, BuddyTargetMixin
from airflow_provider_buddy.utils.buddy_task_waiting import BuddyWaitingMixin, resumed_pipeline_id
from airflow_provider_buddy.utils.buddy_variables import approval_variables_of, check_variables, mask_variables
from airflow_provider_buddy.utils.buddy_waiting import DEFAULT_LOG_TAIL, describe_execution, execution_summary
from airflow_provider_buddy.utils.cancelling import cancel_if_going_sync, cancel_unless_ended
from airflow_provider_buddy.utils.dag_cleanup import RunRecord, record_run, register_on_dag
from airflow_provider_buddy.utils.deferral import ended_in_triggerer
from airflow_provider_buddy.utils.reattach import (
    SEARCH_DEPTH,
    first_try_of_generation,
    marked_comment,
    marked_try,
    task_marker,
    try_number_of,
)
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, deadline_before_timeout

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from airflow_provider_buddy.models.buddy import Execution, RunPipelineRequest, Variable
    from airflow_provider_buddy.utils.buddy_waiting import BuddyWaitEvent

_PRIORITIES = ("LOW", "NORMAL", "HIGH")


def run_variables(value: Any, parameter: str) -> None:
    """Check run variables (dict or list), masking their encrypted values; text is refused without being shown."""
    if isinstance(value, str):
        raise ValueError(
            f"{parameter} must be a dict or a list of {{key, value, encrypted}}, got a string (not shown: it may hold secrets); "
            "a template must render to one: give them as a list or dict, or set render_template_as_native_obj=True on the DAG"
        )
    check_variables(value, parameter)


def action_ids(value: Any, parameter: str) -> None:
    """Check a list of action ids."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{parameter} must be a list of action ids, got {value!r}")
    for index, action_id in enumerate(value):
        positive_int(action_id, f"{parameter}[{index}]")


class BuddyBaseOperator(BuddyTargetMixin, BaseOperator):
    """
    What every Buddy operator shares: connection, workspace, project, pipeline.

    Every templated argument also takes a value Airflow resolves when the task runs: ``task.output``, a
    TaskFlow result (the dependency is set for you). It is checked once resolved, before anything is sent.

    :param project_name: the project's name id (templated).
    :param pipeline_id: an int id, or a string that is the pipeline's identifier or name (resolved
        once through ``find_pipeline``) (templated).
    :param workspace: overrides the connection's workspace (templated).
    :param buddy_conn_id: the Airflow connection.
    """

    ui_color = "#1a86fd"

    def __init__(
        self,
        *,
        project_name: str,
        pipeline_id: int | str,
        workspace: str | None = None,
        buddy_conn_id: str = BUDDY_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.set_target(project_name, pipeline_id, workspace, buddy_conn_id)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render, then mask the rendered encrypted values before Airflow records the rendered fields."""
        super().render_template_fields(context, jinja_env)
        for name in ("variables", "approval_variables"):
            mask_variables(getattr(self, name, None))


class _WaitingOperator(BuddyWaitingMixin, BuddyBaseOperator):
    """An operator that may wait on the execution it acts on (run, retry)."""

    operator_extra_links = (BuddyExecutionLink(),)
    argument_checks: ClassVar[Mapping[str, Check]] = {**TARGET_CHECKS, "approval_variables": check_variables}

    def __init__(
        self,
        *,
        wait_for_completion: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        on_approval: str = "wait",
        approval_variables: Any = None,
        cancel_on_kill: bool = True,
        cancel_on_dag_failure: bool = True,
        skipped_is_success: bool = False,
        log_tail_lines: int = DEFAULT_LOG_TAIL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, flag in (
            ("wait_for_completion", wait_for_completion),
            ("cancel_on_kill", cancel_on_kill),
            ("cancel_on_dag_failure", cancel_on_dag_failure),
            ("skipped_is_success", skipped_is_success),
        ):
            check_bool(flag, name)
        check_bool(deferrable, "deferrable", optional=True)
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.on_approval = ApprovalPolicy.parse(on_approval).value
        self.approval_variables = approval_variables
        self.check_given_arguments("approval_variables")
        self.cancel_on_kill = cancel_on_kill
        self.skipped_is_success = skipped_is_success
        self.log_tail_lines = non_negative_int(log_tail_lines, "log_tail_lines")
        self.cancel_on_dag_failure = cancel_on_dag_failure
        if cancel_on_dag_failure:
            register_on_dag(self)
        self._execution_id: int | None = None

    def _started(self, context: Context, execution: Execution) -> None:
        """Record the execution at once, before any waiting: XCom, the extra link, the record a failed DAG run reads."""
        self._execution_id = execution.id
        ti = context["ti"]
        ti.xcom_push(key=EXECUTION_ID_KEY, value=execution.id)
        record = RunRecord(service="buddy", conn_id=self.buddy_conn_id, workspace=self.workspace, project=self.project_name)
        record_run(context, {**record, "pipeline_id": self.resolve_pipeline_id(), "id": execution.id})
        BuddyExecutionLink.persist(context, execution.html_url)

    def _wait(self, context: Context, pipeline_id: int, execution: Execution) -> Any:
        """Wait in the chosen mode; returns the summary. Transient trouble never fails the task: the run is started,
        and a retry would start another."""
        if self.deferrable:
            return self.first_look_or_defer(
                pipeline_id,
                execution.id,
                self.poll_interval,
                end_time=deadline_before_timeout(self.execution_timeout, context),
                cancel_on_timeout=self.cancel_on_kill,
            )
        return self.wait_sync(pipeline_id, execution.id, self.poll_interval)

    def _record_and_wait(self, context: Context, pipeline_id: int, execution: Execution) -> int:
        """Record the execution (:meth:`_started`), then wait if asked (the summary goes to XCom ``summary``); returns
        the execution id."""
        self._started(context, execution)
        if not self.wait_for_completion:
            return execution.id
        summary = self._wait(context, pipeline_id, execution)
        context["ti"].xcom_push(key="summary", value=summary)
        return execution.id

    def execute_complete(self, context: Context, event: BuddyWaitEvent, **_: Any) -> Any:
        """Called when the trigger fires; returns the execution id (the summary goes to XCom ``summary``)."""
        if ended_in_triggerer(event):
            execution_id = context["ti"].xcom_pull(task_ids=self.task_id, key=EXECUTION_ID_KEY)
            event = self.event_of_ended_task(self.resolve_pipeline_id(), positive_int(execution_id, "execution_id"))
        self._execution_id = event.get("execution_id")
        pipeline_id = resumed_pipeline_id(event, self.resolve_pipeline_id)
        summary = self.resume_wait(event, pipeline_id, self.poll_interval)
        context["ti"].xcom_push(key="summary", value=summary)
        return event.get("execution_id")

    def on_kill(self) -> None:
        """The task was killed or timed out on the worker: cancel the execution if still going (unless told not to)."""
        execution_id = self._execution_id
        if execution_id is None:
            return
        if not self.cancel_on_kill:
            self.log.info("Task killed; Buddy execution %s left going (cancel_on_kill=False)", execution_id)
            return
        cancel_if_going_sync(  # the pipeline id is resolved inside the retried calls (cached after the first)
            self.log,
            f"Buddy execution {execution_id}",
            lambda: self.hook.get_execution(self.project_name, self.resolve_pipeline_id(), execution_id, workspace=self.workspace),
            lambda: self.hook.cancel_execution(self.project_name, self.resolve_pipeline_id(), execution_id, workspace=self.workspace),
            describe_execution,
            pause=min(self.poll_interval, 1.0),
        )


class BuddyRunPipelineOperator(_WaitingOperator):
    """
    Runs a Buddy pipeline and (by default) waits for the run to end, in the worker or deferred.

    Pushes XCom ``execution_id`` and ``html_url`` right after the run starts, before any waiting,
    and returns the execution id; the wait's summary (status, link, outputted variables) goes to
    XCom ``summary``. A retried task carries on with the run its earlier try started (the run's
    comment carries a marker of the task instance and the try) instead of starting a second one:
    a run still going is waited on, one that succeeded gives its result, and one that failed or was
    cancelled is retried in Buddy (``retry_failed_run``). A task cleared by a person runs the pipeline
    again, unless the earlier run is still going.

    :param branch: run on this branch (templated; at most one of branch, tag, pull_request).
    :param tag: run on this tag (templated).
    :param pull_request: run on this pull request (templated).
    :param revision: the commit to run, sent as ``to_revision`` (templated).
    :param from_revision: the commit the changeset starts from (templated).
    :param comment: the run's comment (templated); a re-attach marker is appended.
    :param refresh: deploy from scratch.
    :param clear_cache: clear the pipeline's cache before running.
    :param priority: ``LOW``, ``NORMAL`` or ``HIGH``.
    :param variables: a ``{key: value}`` dict or a list of ``{key, value, encrypted}`` (templated);
        encrypted values are masked in logs and rendered fields.
    :param actions_to_run: only run these action ids (templated).
    :param environment: the environment to run in (templated).
    :param package_version: ``name:version`` of a package to deploy (templated).
    :param delay_until: a timezone-aware datetime: the run starts then (:class:`BuddyRunScheduledExecutionOperator`
        starts it earlier).
    :param wait_for_completion: wait for the run to end (else return once it started).
    :param deferrable: wait in the triggerer, holding no worker slot.
    :param poll_interval: seconds between status checks.
    :param on_approval: ``wait``, ``succeed``, ``fail`` or ``approve`` (see the sensor).
    :param approval_variables: answers for a "pass arguments" prompt with ``on_approval="approve"``.
    :param reattach_on_retry: on a later try, carry on with the run an earlier try started (False: always start a new run).
    :param retry_failed_run: when an automatic retry finds that its earlier try's run failed or was cancelled,
        retry that execution in Buddy (``RETRY``: it resumes from the failed action, on the same revision)
        instead of starting a new run. False starts a new run. A run Buddy refuses to retry is run anew.
    :param cancel_on_kill: cancel the run when the task is killed or times out.
    :param cancel_on_dag_failure: when the DAG run fails (whatever failed it: a later task, Airflow itself, a timeout,
        a person), cancel this task's run if it is still going (registered once as the DAG's failure callback).
    :param skipped_is_success: read a SKIPPED run as success.
    :param log_tail_lines: how many log lines of a failed action to show.
    """

    template_fields: Sequence[str] = (
        "project_name",
        "pipeline_id",
        "workspace",
        "branch",
        "tag",
        "pull_request",
        "revision",
        "from_revision",
        "comment",
        "environment",
        "package_version",
        "variables",
        "approval_variables",
        "actions_to_run",
    )
    argument_checks: ClassVar[Mapping[str, Check]] = {
        **_WaitingOperator.argument_checks,
        "variables": run_variables,
        "actions_to_run": optional(action_ids),
    }

    def __init__(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        pull_request: str | None = None,
        revision: str | None = None,
        from_revision: str | None = None,
        comment: str | None = None,
        refresh: bool | None = None,
        clear_cache: bool | None = None,
        priority: str | None = None,
        variables: Any = None,
        actions_to_run: Sequence[int] | None = None,
        environment: str | None = None,
        package_version: str | None = None,
        delay_until: datetime | None = None,
        reattach_on_retry: bool = True,
        retry_failed_run: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.branch = branch
        self.tag = tag
        self.pull_request = pull_request
        self.revision = revision
        self.from_revision = from_revision
        self.comment = comment
        self.refresh = refresh
        self.clear_cache = clear_cache
        self.priority = priority
        self.variables = variables
        self.actions_to_run = actions_to_run
        self.environment = environment
        self.package_version = package_version
        self.delay_until = delay_until
        self.reattach_on_retry = reattach_on_retry
        self.retry_failed_run = retry_failed_run
        self._check_at_parse_time()

    def _check_at_parse_time(self) -> None:
        check_bool(self.reattach_on_retry, "reattach_on_retry")
        check_bool(self.retry_failed_run, "retry_failed_run")
        check_bool(self.refresh, "refresh", optional=True)
        check_bool(self.clear_cache, "clear_cache", optional=True)
        if self.priority is not None and str(self.priority).upper() not in _PRIORITIES:
            raise ValueError(f"priority must be one of LOW, NORMAL, HIGH, got {self.priority!r}")
        if self.delay_until is not None and (
            not isinstance(self.delay_until, datetime) or self.delay_until.tzinfo is None or self.delay_until.utcoffset() is None
        ):
            raise ValueError(f"delay_until must be a timezone-aware datetime, got {self.delay_until!r}")
        self.check_given_arguments("variables", "actions_to_run")
        self.build_request(comment=self.comment, given_only=True)

    def check_arguments(self) -> None:
        """Every argument once resolved, then the run request they make (branch, tag and pull_request exclusive...)."""
        super().check_arguments()
        self.build_request(comment=self.comment)

    def build_request(self, *, comment: Any, given_only: bool = False) -> RunPipelineRequest:
        """
        The run request from the (rendered) parameters; a ValueError names the wrong parameter. ``given_only``: from
        the values known when the DAG is parsed, leaving out those resolved when the task runs.
        """
        from airflow_provider_buddy.models.buddy import RunPipelineRequest, variables_from

        def given(value: Any) -> Any:
            return None if given_only and resolved_later(value) else value

        raw_variables = given(self.variables)
        variables: list[Variable] = variables_from(raw_variables) if raw_variables else []
        mask_variables(variables)
        actions = given(self.actions_to_run)
        try:
            return RunPipelineRequest(
                branch=given(self.branch) or None,
                tag=given(self.tag) or None,
                pull_request=given(self.pull_request) or None,
                revision=given(self.revision) or None,
                from_revision=given(self.from_revision) or None,
                comment=given(comment),
                refresh=self.refresh,
                clear_cache=self.clear_cache,
                priority=self.priority.upper() if isinstance(self.priority, str) else self.priority,
                variables=variables,
                actions_to_run=list(actions) if actions is not None else None,
                environment=given(self.environment) or None,
                package_version=given(self.package_version) or None,
                delay_until=self.delay_until,
            )
        except ValidationError as exc:
            raise ValueError(f"{type(self).__name__} {self.task_id!r}: {describe_validation_error(exc)}") from None

    # ---- run -----------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Start (or carry on with) the run, record it, then wait as configured."""
        self.check_arguments()  # rendered and resolved values fail now, before the run starts
        marker = task_marker(context)
        ti = context["ti"]
        try_number = try_number_of(ti)
        request = self.build_request(comment=marked_comment(self.comment, marker, context, try_number=try_number))
        pipeline_id = self.resolve_pipeline_id()
        before = self.marked_runs(pipeline_id, marker)  # also tells a lost answer's run from older ones
        execution: Execution | None = None
        if self.reattach_on_retry and before:
            execution = self._carry_on_with(pipeline_id, before[0], marker, first_try_of_generation(ti, self.retries), try_number)
        if execution is None:
            execution = self._start(pipeline_id, marker, try_number, request, known={e.id for e in before})
        return self._record_and_wait(context, pipeline_id, execution)

    def _carry_on_with(self, pipeline_id: int, execution: Execution, marker: str, first_try: int, try_number: int) -> Execution | None:
        """
        The run an earlier try of this task instance started, when this try carries on with it.

        Still going: wait on it (also after a clear: a second run beside it would be worse). Ended, and
        started in this generation (this try is an automatic retry): take a success as it is; retry a
        failure or cancellation in Buddy when ``retry_failed_run``. Otherwise None: start a new run.
        """
        what = describe_execution(execution)
        if not execution.is_finished:
            self.log.info("Re-attaching to %s, started by an earlier try of this task instance (%s)", what, execution.status)
            return execution
        started_by = marked_try(execution.comment, marker)
        if started_by is None or not first_try <= started_by < try_number:
            self.log.info(
                "This task's earlier %s already ended (%s) before the task was cleared; starting a new run", what, execution.status
            )
            return None
        group = execution.status_group
        if group is StatusGroup.SUCCESS or (group is StatusGroup.SKIPPED and self.skipped_is_success):
            self.log.info(
                "%s, started by try %s, already ended %s: taking its result instead of running again", what, started_by, execution.status
            )
            return execution
        if self.retry_failed_run and group in (StatusGroup.FAILURE, StatusGroup.CANCELLED):
            return self._retry_in_buddy(pipeline_id, execution, started_by)
        self.log.info("%s, started by try %s, ended %s; starting a new run", what, started_by, execution.status)
        return None

    def _retry_in_buddy(self, pipeline_id: int, execution: Execution, started_by: int) -> Execution | None:
        """RETRY the earlier try's failed run; None (run anew) when Buddy refuses to retry it."""
        try:
            retried = self.hook.retry_execution(self.project_name, pipeline_id, execution.id, workspace=self.workspace)
        except BuddyApiError as exc:  # a 4xx: Buddy will not retry this one (a lost answer raises and the next try re-attaches)
            self.log.warning("Buddy refused to retry %s (%s); starting a new run", describe_execution(execution), exc)
            return None
        self.log.info(
            "Retried %s in Buddy (it had ended %s on try %s) instead of starting a new run (%s)",
            describe_execution(retried),
            execution.status,
            started_by,
            retried.status,
        )
        return retried

    def _start(self, pipeline_id: int, marker: str, try_number: int, request: RunPipelineRequest, known: set[int]) -> Execution:
        try:
            execution = self.hook.run_pipeline(self.project_name, pipeline_id, request, workspace=self.workspace)
        except (BuddyConnectionError, BuddyResponseError, BuddyServerError) as exc:
            # The POST may have reached Buddy (a lost, garbled or 5xx answer): look for the run this try would
            # have started before failing: tagged with this try, and not among the marked runs seen before sending.
            self.log.warning("The run request's answer was lost (%s); looking for the run by its marker", exc)
            found = self._search_after_lost_answer(pipeline_id, marker, try_number, known)
            if found is None:
                raise
            self.log.info("Found %s: the run request did reach Buddy", describe_execution(found))
            return found
        self.log.info("Started %s (%s)", describe_execution(execution), execution.status)
        return execution

    def _search_after_lost_answer(self, pipeline_id: int, marker: str, try_number: int, known: set[int]) -> Execution | None:
        """The search after a lost run answer must not fail on transient trouble: this try would then fail with a run
        going (or done) that a retry, seeing it ended, would start again. It tries a few times."""
        for attempt in range(LOOKUP_ATTEMPTS):
            try:
                return self.find_marked_run(pipeline_id, marker, try_number=try_number, exclude=known)
            except BuddyError as exc:
                if not exc.transient or attempt + 1 == LOOKUP_ATTEMPTS:
                    raise
                self.log.warning("Looking for the run failed (%s); trying again", exc)
                time.sleep(min(self.poll_interval, 1.0))
        return None  # pragma: no cover

    def marked_runs(self, pipeline_id: int, marker: str) -> list[Execution]:
        """The runs this task instance started, newest first, among the recent executions."""
        executions = self.hook.list_executions(
            self.project_name, pipeline_id, workspace=self.workspace, per_page=50, max_items=SEARCH_DEPTH
        )
        return [e for e in executions if e.comment and marker in e.comment]

    def find_marked_run(
        self, pipeline_id: int, marker: str, *, try_number: int | None = None, exclude: set[int] | frozenset[int] = frozenset()
    ) -> Execution | None:
        """The newest run this task instance started (given ``try_number``: that try), leaving out ``exclude``."""
        for execution in self.marked_runs(pipeline_id, marker):
            if execution.id not in exclude and (try_number is None or marked_try(execution.comment, marker) == try_number):
                return execution
        return None


class _ExistingExecutionOperator(_WaitingOperator):
    """
    A waiting operator that acts on an execution that exists already (retry, run a scheduled one): it reads the
    execution, acts on it (:meth:`act_on`), records it, then waits if asked.

    :param execution_id: the execution (templated; ``run.output`` of a run operator works).
    """

    template_fields: Sequence[str] = ("project_name", "pipeline_id", "workspace", "execution_id", "approval_variables")
    argument_checks: ClassVar[Mapping[str, Check]] = {**_WaitingOperator.argument_checks, "execution_id": positive_int}

    def __init__(self, *, execution_id: int | str, wait_for_completion: bool = False, **kwargs: Any) -> None:
        super().__init__(wait_for_completion=wait_for_completion, **kwargs)
        self.execution_id = execution_id
        self.check_given_arguments("execution_id")

    def execute(self, context: Context) -> Any:
        """Read the execution, act on it (:meth:`act_on`), record it, then wait if asked."""
        self.check_arguments()  # rendered and resolved values fail now, before anything is sent
        pipeline_id = self.resolve_pipeline_id()
        execution_id = positive_int(self.execution_id, "execution_id")
        current = self.hook.get_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
        execution = self.act_on(pipeline_id, execution_id, current)
        return self._record_and_wait(context, pipeline_id, execution)

    def act_on(self, pipeline_id: int, execution_id: int, current: Execution) -> Execution:
        """Act on the execution as last read (``current``); returns it as Buddy answered."""
        raise NotImplementedError


class BuddyRetryExecutionOperator(_ExistingExecutionOperator):
    """
    Retries (``RETRY``) a failed or cancelled execution, and optionally waits for it.

    :param execution_id: the execution (templated; ``run.output`` of a run operator works).
    """

    def act_on(self, pipeline_id: int, execution_id: int, current: Execution) -> Execution:
        """Check the execution can be retried, then retry it."""
        if current.status_group not in (StatusGroup.FAILURE, StatusGroup.CANCELLED):
            raise BuddyApiError(
                f"{describe_execution(current)} cannot be retried: its status is {current.status} "
                "(only FAILED or TERMINATED executions can be retried)"
            )
        execution = self.hook.retry_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
        self.log.info("Retried %s (%s)", describe_execution(execution), execution.status)
        return execution


class BuddyCancelExecutionOperator(BuddyBaseOperator):
    """
    Cancels (``CANCEL``) an execution. One that already ended is logged, not an error, unless
    ``fail_if_finished=True``.

    :param execution_id: the execution (templated; ``run.output`` of a run operator works).
    :param fail_if_finished: fail when the execution had already ended.
    """

    template_fields: Sequence[str] = ("project_name", "pipeline_id", "workspace", "execution_id")
    argument_checks: ClassVar[Mapping[str, Check]] = EXECUTION_CHECKS

    def __init__(self, *, execution_id: int | str, fail_if_finished: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.fail_if_finished = fail_if_finished
        check_bool(fail_if_finished, "fail_if_finished")
        self.check_given_arguments("execution_id")

    def execute(self, context: Context) -> Any:
        """Cancel unless already ended; returns the execution's summary."""
        self.check_arguments()
        pipeline_id = self.resolve_pipeline_id()
        execution_id = positive_int(self.execution_id, "execution_id")
        ref = (self.project_name, pipeline_id, execution_id)
        execution = cancel_unless_ended(
            self.log,
            lambda: self.hook.get_execution(*ref, workspace=self.workspace),
            lambda: self.hook.cancel_execution(*ref, workspace=self.workspace),
            describe_execution,
            refused=BuddyApiError,
            fail_if_finished=self.fail_if_finished,
        )
        return execution_summary(execution)


class BuddyRunScheduledExecutionOperator(_ExistingExecutionOperator):
    """
    Starts a run that was scheduled with ``delay_until`` now (``RUN_DELAYED``,
    https://buddy.works/docs/api/runs/update/run-scheduled-execution), and optionally waits for it. A run that already
    started is left as it is (logged); one that already ended fails the task.

    :param execution_id: the scheduled execution (templated; ``schedule.output`` of the run operator that scheduled it
        works).
    """

    def act_on(self, pipeline_id: int, execution_id: int, current: Execution) -> Execution:
        """Start the scheduled run now unless it started already."""
        if current.is_finished:
            raise BuddyApiError(f"{describe_execution(current)} has already ended ({current.status}); there is nothing to start")
        execution = current
        if not current.not_started:
            self.log.info("%s already started (%s); RUN_DELAYED not sent", describe_execution(current), current.status)
        else:
            try:
                execution = self.hook.run_delayed_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
            except BuddyApiError as exc:  # a 4xx: it may have started on its own meanwhile
                execution = self.hook.get_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
                if execution.not_started or execution.is_finished:
                    raise
                self.log.info(
                    "Buddy refused RUN_DELAYED (%s): %s started meanwhile (%s)", exc, describe_execution(execution), execution.status
                )
            else:
                due = f", scheduled for {current.delay_until.isoformat()}" if current.delay_until is not None else ""
                self.log.info("Started %s now (RUN_DELAYED%s): %s", describe_execution(execution), due, execution.status)
        return execution


class BuddyApproveExecutionOperator(BuddyBaseOperator):
    """
    Answers a waiting execution with the operation its wait takes: ``APPLY`` for "Wait for approval",
    ``APPLY_VARIABLES`` for "Pass arguments" and ``SET_VARIABLES`` for settable variables (both with ``variables``),
    ``APPROVE_VT`` for an "Approve Visual Tests Session" (see
    :data:`~airflow_provider_buddy.models.buddy_status.APPROVE_OPERATIONS`). The waiting action execution is found and
    sent as ``approve_action_id``.

    :param execution_id: the execution (templated; ``run.output`` of a run operator works).
    :param variables: answers for a variables prompt (dict or list; templated).
    """

    template_fields: Sequence[str] = ("project_name", "pipeline_id", "workspace", "execution_id", "variables")
    operator_extra_links = (BuddyExecutionLink(),)
    argument_checks: ClassVar[Mapping[str, Check]] = {**EXECUTION_CHECKS, "variables": check_variables}

    def __init__(self, *, execution_id: int | str, variables: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.variables = variables
        self.check_given_arguments("execution_id", "variables")

    def execute(self, context: Context) -> Any:
        """Check the execution waits for what we answer, then answer it."""
        self.check_arguments()
        pipeline_id = self.resolve_pipeline_id()
        execution_id = positive_int(self.execution_id, "execution_id")
        answers = approval_variables_of(self.variables, "variables")
        current = self.hook.get_execution(self.project_name, pipeline_id, execution_id, workspace=self.workspace)
        BuddyExecutionLink.persist(context, current.html_url)
        kind = current.waits_for
        if kind is None:
            raise BuddyApiError(f"{describe_execution(current)} is not waiting for approval: its status is {current.status}")
        if kind is WaitKind.VARIABLES and not answers:
            raise ValueError(f"variables: {describe_execution(current)} waits for variables ({current.waiting_status}); give them")
        if kind is not WaitKind.VARIABLES and answers:
            raise ValueError(f"variables: {describe_execution(current)} waits for {current.waiting_status}, not for variables")
        waiting = current.waiting_action
        action_id = waiting.action_execution_id if waiting is not None else None
        answer = self.hook.answer_wait(
            self.project_name,
            pipeline_id,
            execution_id,
            current.waiting_status,
            variables=answers or None,
            action_execution_id=action_id,
            workspace=self.workspace,
        )
        shown = ", ".join(f"{v.key}={v.safe_value()}" for v in answers)
        self.log.info(
            "Approved %s at action %r (%s)",
            describe_execution(answer.execution),
            waiting.name if waiting is not None else None,
            f"{answer.operation} {shown}" if shown else answer.operation,
        )
        return execution_summary(answer.execution)


class BuddyClearPipelineCacheOperator(BuddyBaseOperator):
    """Clears every action cache of a pipeline (``PATCH clear_cache: true``); returns its id and name."""

    template_fields: Sequence[str] = ("project_name", "pipeline_id", "workspace")

    def execute(self, context: Context) -> Any:
        """Clear the cache."""
        self.check_arguments()
        pipeline_id = self.resolve_pipeline_id()
        pipeline = self.hook.clear_pipeline_cache(self.project_name, pipeline_id, workspace=self.workspace)
        self.log.info("Cleared the cache of pipeline %s (%s)", pipeline.id, pipeline.name)
        return {"pipeline_id": pipeline.id, "name": pipeline.name}
