"""
Wait for a Buddy run that something else started: a webhook, a person in Buddy's UI, another system.

Trigger it with the execution to wait for, e.g. ``{"pipeline": "deploy-staging", "execution_id": 42}`` (a
pipeline's id, identifier or name). ``wait`` is a deferrable sensor whose arguments need no XCom, so on Airflow 3.2+
it starts straight in the triggerer: no worker slot is taken to wait, and when the run succeeds the task ends there
too (Airflow 3.1 runs it on a worker first, which defers at once). ``report`` prints what the run output.

Connection ``buddy_default`` (type ``buddy``). With the local emulator (``make demo``'s scenario), start a run with
``POST /__emulator__/start/web/2`` and trigger this DAG with the id it answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor

with DAG(
    dag_id="buddy_wait_for_execution",
    description="Wait for a Buddy run started elsewhere, without holding a worker",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["buddy"],
    params={
        "pipeline": Param("deploy-staging", type="string", description="The pipeline's id, identifier or name"),
        "execution_id": Param(1, type="integer", minimum=1, description="The execution to wait for"),
    },
) as dag:
    wait = BuddyExecutionSensor(
        task_id="wait",
        project_name="web",
        pipeline_id="{{ params.pipeline }}",
        execution_id="{{ params.execution_id }}",
        on_approval="wait",  # a person approves in Buddy
        deferrable=True,
        poke_interval=5,
        timeout=6 * 3600,
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        print(f"Buddy execution {summary['execution_id']} ended {summary['status']}: {summary['outputted_variables']}")

    report(wait.output)
