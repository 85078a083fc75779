"""
A Buddy run that stops at a "Pass arguments" step, answered from Airflow's form.

1. ``start``   — run the ``release-notes`` pipeline; it stops at its "Pass arguments" step
                 (``WAIT_FOR_VARIABLES``). ``on_approval="succeed"`` ends the task at that gate.
2. ``answer``  — Airflow's human-in-the-loop request on that execution (``start.output``) shows a form
                 pre-filled from the values Buddy asks for; Approve sends them with APPLY_VARIABLES,
                 Reject cancels the Buddy run.
3. ``publish`` — wait for the run to finish with the given values.

Connection ``buddy_default``. Runs against the emulator's ``demo.json`` scenario.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_buddy.operators.approval import BuddyApprovalOperator
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor

with DAG(
    dag_id="buddy_pass_arguments",
    description="Answer a Buddy 'Pass arguments' prompt from an Airflow form",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["buddy"],
) as dag:
    start = BuddyRunPipelineOperator(
        task_id="start", project_name="web", pipeline_id="release-notes", on_approval="succeed", deferrable=True, poll_interval=2
    )
    answer = BuddyApprovalOperator(
        task_id="answer",
        project_name="web",
        pipeline_id="release-notes",
        execution_id=start.output,  # the execution id: this also makes start run first
        subject="Release notes for the next release",
    )
    publish = BuddyExecutionSensor(
        task_id="publish", project_name="web", pipeline_id="release-notes", execution_id=start.output, deferrable=True, poke_interval=2
    )
    answer >> publish
