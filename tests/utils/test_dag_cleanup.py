"""A failed DAG run cancels what its Buddy and GoRules tasks left going (real Airflow, emulator over HTTP).

Airflow runs the DAG's failure callback in the dag-processor: the real-deployment suite shows Airflow calling it.
Here the callback's own work runs inside a real task (it reads XComs through the task runner's comms, as it does
in the dag-processor), after the tasks that started runs.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.operators.gorules import GoRulesDeployReleaseOperator
from airflow_provider_buddy.testing import BuddyEmulator
from airflow_provider_buddy.utils.dag_cleanup import cancel_runs_left_going
from tests.airflow_support import run_dag, states
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("airflow_db", "buddy_conn", "gorules_conn")
_ids = itertools.count()
GATE = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 1},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
]


def test_operators_register_the_cleanup_once_beside_the_dags_own_callback() -> None:
    def own(context: Any) -> None: ...

    with DAG(dag_id=f"cleanup_reg_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), on_failure_callback=own) as dag:
        BuddyRunPipelineOperator(task_id="a", project_name="web", pipeline_id=1)
        BuddyRunPipelineOperator(task_id="b", project_name="web", pipeline_id=1)
        BuddyRunPipelineOperator(task_id="c", project_name="web", pipeline_id=1, cancel_on_dag_failure=False)
    assert dag.on_failure_callback == [own, cancel_runs_left_going] and dag.has_on_failure_callback
    with DAG(dag_id=f"cleanup_off_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as quiet:
        BuddyRunPipelineOperator(task_id="a", project_name="web", pipeline_id=1, cancel_on_dag_failure=False)
    assert quiet.on_failure_callback is None and not quiet.has_on_failure_callback


def test_a_failed_dag_run_cancels_the_runs_its_tasks_left_going(emulator: BuddyEmulator, brms: Brms) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="deploy", name="Deploy", actions=GATE, wait_shown_on="action")
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="keep", name="Keep", actions=GATE, wait_shown_on="action")
    with DAG(dag_id=f"cleanup_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        staging = BuddyRunPipelineOperator(
            task_id="staging", project_name="web", pipeline_id="deploy", on_approval="succeed", poll_interval=0.1
        )
        kept = BuddyRunPipelineOperator(
            task_id="kept", project_name="web", pipeline_id=3, on_approval="succeed", poll_interval=0.1, cancel_on_dag_failure=False
        )
        built = BuddyRunPipelineOperator(task_id="built", project_name="web", pipeline_id=1, poll_interval=0.1)
        rules = GoRulesDeployReleaseOperator(
            task_id="rules",
            project_id=brms.project_id,
            release_id=brms.release_id,
            environment_id=brms.env["staging"],
            on_approval="succeed",
            poll_interval=0.1,
        )

        @task
        def breaks() -> None:
            raise RuntimeError("a later task fails the DAG run")

        @task(trigger_rule="all_done", execution_timeout=timedelta(minutes=2))
        def failure_callback(**context: Any) -> None:  # what the dag-processor runs when the DAG run fails
            cancel_runs_left_going({"dag": context["dag"], "run_id": context["run_id"]})

        [staging, kept, built, rules] >> breaks() >> failure_callback()
    dag_run = run_dag(dag)
    assert states(dag_run)["breaks"] == "failed" and states(dag_run)["failure_callback"] == "success"
    [left] = emulator.executions("web", 2)
    [kept_run] = emulator.executions("web", 3)
    [done] = emulator.executions("web", 1)
    [rules_run] = emulator.gorules_runs(brms.project_id)
    assert left["status"] == "TERMINATED" and kept_run["status"] != "TERMINATED" and done["status"] == "SUCCESSFUL"
    assert rules_run["status"] == "cancelled" and "DAG run of task" in rules_run["cancelledComment"]
    cancels = [r for r in emulator.requests_to("PATCH", r"/executions/\d+$") if r.json.get("operation") == "CANCEL"]
    assert [r.path.rsplit("/", 1)[-1] for r in cancels] == [str(left["id"])]  # never sent to a run that ended
