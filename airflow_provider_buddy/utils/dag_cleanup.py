"""Nothing left going when a DAG run fails: every Buddy execution and GoRules run a DAG run started is recorded
(XCom) as soon as it is known, and a failed DAG run cancels the ones still going.

The run and deploy operators register :func:`cancel_runs_left_going` as an ``on_failure_callback`` of their DAG
(once per DAG, next to the DAG's own callbacks) unless ``cancel_on_dag_failure=False``. Airflow runs DAG callbacks
in the dag-processor when the scheduler fails the DAG run: a task's own failure, a try Airflow itself failed (its
defer race), ``dagrun_timeout``. Airflow runs no DAG callback for a DAG run a person marks failed (through the UI or
the REST API); marking the running task failed does start the cleanup. A run a task leaves going on purpose
(``on_approval="succeed"``, ``wait_for_completion=False``) is cancelled too when a later task fails the DAG run:
that is what "nothing left going" means.
"""

from __future__ import annotations

from typing import Any, TypedDict, cast

from airflow_provider_buddy.utils.cancelling import cancel_if_going_sync

RUN_RECORD_KEY = "airflow_provider_buddy_run"
"""The XCom a task records its run under (one per task instance)."""


class RunRecord(TypedDict, total=False):
    """
    What a failed DAG run needs to cancel a run one of its tasks started (plain values, no secret).

    :param service: ``"buddy"`` or ``"gorules"``.
    :param conn_id: the Airflow connection.
    :param workspace: the Buddy workspace given to the task (None: the connection's).
    :param project: the Buddy project name or the GoRules project id.
    :param pipeline_id: the Buddy pipeline's numeric id.
    :param id: the execution id (Buddy) or run id (GoRules).
    :param comment: the reason sent with a GoRules cancel.
    """

    service: str
    conn_id: str
    workspace: str | None
    project: str
    pipeline_id: int
    id: Any
    comment: str


def record_run(context: Any, record: RunRecord) -> None:
    """Record the task's run (XCom :data:`RUN_RECORD_KEY`) for the DAG run's failure callback."""
    context["ti"].xcom_push(key=RUN_RECORD_KEY, value=dict(record))


def register_on_dag(task: Any) -> None:
    """Have ``task``'s DAG cancel what its runs leave going when a DAG run fails (once per DAG)."""
    if not task.has_dag():
        return
    dag = task.dag
    callbacks = dag.on_failure_callback
    listed = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks] if callbacks is not None else []
    if cancel_runs_left_going not in listed:
        dag.on_failure_callback = [*listed, cancel_runs_left_going]
        dag.has_on_failure_callback = True  # computed when the DAG was built: serialized DAGs read this flag


def cancel_runs_left_going(context: Any) -> None:
    """
    A DAG ``on_failure_callback``: cancel every recorded Buddy execution and GoRules run of this DAG run that is
    still going, from tasks with ``cancel_on_dag_failure``. Each is read first (never a cancel to a run that
    ended); every outcome is logged, nothing raised.
    """
    import logging

    log = logging.getLogger(__name__)
    dag = context["dag"]
    run_id = context["run_id"]
    for task in dag.tasks:
        if not getattr(task, "cancel_on_dag_failure", False):
            continue
        for record in _records(context, dag.dag_id, task.task_id, run_id):
            try:
                _cancel(log, record, f"DAG run {run_id} of {dag.dag_id} failed")
            except Exception:
                log.exception("Could not cancel the run task %s left going", task.task_id)


def _records(context: Any, dag_id: str, task_id: str, run_id: str) -> list[RunRecord]:
    from airflow.providers.common.compat.sdk import XCom  # the configured XCom backend, on Airflow 3.1 to 3.3

    found = XCom.get_all(key=RUN_RECORD_KEY, dag_id=dag_id, task_id=task_id, run_id=run_id)
    return [cast("RunRecord", record) for record in found or [] if isinstance(record, dict) and record.get("id") is not None]


def _cancel(log: Any, record: RunRecord, why: str) -> None:
    if record.get("service") == "gorules":
        from airflow_provider_buddy.hooks.gorules import GoRulesHook
        from airflow_provider_buddy.utils.gorules_waiting import describe_run

        gorules = GoRulesHook(record["conn_id"])
        project, run = record["project"], str(record["id"])
        comment = record.get("comment") or f"Cancelled by Airflow: {why}"
        cancel_if_going_sync(
            log,
            f"GoRules run {run}",
            lambda: gorules.get_run(project, run),
            lambda: gorules.cancel_run(project, run, comment),
            describe_run,
            pause=1.0,
            why=why,
        )
        return
    from airflow_provider_buddy.hooks.buddy import BuddyHook
    from airflow_provider_buddy.utils.buddy_waiting import describe_execution

    buddy = BuddyHook(record["conn_id"])
    ref = (record["project"], int(record["pipeline_id"]), int(record["id"]))
    workspace = record.get("workspace")
    cancel_if_going_sync(
        log,
        f"Buddy execution {ref[2]}",
        lambda: buddy.get_execution(*ref, workspace=workspace),
        lambda: buddy.cancel_execution(*ref, workspace=workspace),
        describe_execution,
        pause=1.0,
        why=why,
    )
