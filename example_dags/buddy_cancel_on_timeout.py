"""
A Buddy run that Airflow gives up on — and cancels in Buddy, so nothing is left running.

``deploy`` runs the ``long-deploy`` pipeline (an hour-long migration) with an ``execution_timeout``
of 30 seconds. It waits in the triggerer (deferrable); when the timeout is about to pass the trigger
cancels the Buddy execution and the task fails with a timeout, naming the run it cancelled. The same
happens in worker mode (``deferrable=False``), and when the task is killed. Set
``cancel_on_kill=False`` to leave the Buddy run going instead.

Connection ``buddy_default``. Runs against the emulator's ``demo.json`` scenario.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator

with DAG(
    dag_id="buddy_cancel_on_timeout",
    description="Cancel the Buddy run when Airflow's execution_timeout passes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["buddy"],
) as dag:
    BuddyRunPipelineOperator(
        task_id="deploy",
        project_name="web",
        pipeline_id="long-deploy",
        comment="Nightly migration",
        deferrable=True,
        poll_interval=2,
        execution_timeout=timedelta(seconds=30),
        cancel_on_kill=True,
    )
