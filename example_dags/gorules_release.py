"""
Rules release with GoRules BRMS: deploy a release to staging, wait, a person decides, cancel on reject.

1. ``deploy_to_staging`` — deploy release ``params.release_id`` of project ``params.project_id`` to the
                           staging environment (``params.environment_id``) and wait without holding a
                           worker (deferrable) for the deployment workflow run it creates.
                           ``on_approval="succeed"`` ends the task as soon as the run waits for the
                           environment's review, with the environments pending review in its XCom
                           ``summary``; a retry re-attaches to the same run instead of deploying again,
                           and a timeout cancels the run.
2. ``gate_text``         — a TaskFlow task: what the reviewer reads, from the deploy's XCom ``summary``
                           (the run, its link, the environments waiting for review).
3. ``gate``              — the Airflow gate, in the "Required actions" view (human-in-the-loop):
                           "Promote" or "Reject". Unanswered after a day, it rejects.
4. ``wait_for_rollout``  — Promote: wait (deferrable) until the run completes. The BRMS review itself is
                           approved by a reviewer in the BRMS UI: the API documents no approve call.
5. ``cancel_rollout``    — Reject: cancel the run, with the comment the API requires.

``wait_for_rollout`` and ``cancel_rollout`` take the run from ``deploy.output`` (the deploy operator returns
the run id), which also makes them wait for the deploy: values from upstream set the dependencies themselves.

Params: ``project_id``, ``release_id``, ``environment_id`` (ids from the BRMS). Connection
``gorules_default`` (type ``gorules``): host = the BRMS URL (``https://{customer}.gorules.io`` or a
self-hosted URL, with or without ``/api``), password = a personal access token of that BRMS instance.
The file only builds the DAG (no I/O at import), so it parses in well under a second.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_buddy.operators.gorules import GoRulesCancelRunOperator, GoRulesDeployReleaseOperator
from airflow_provider_buddy.operators.hitl import HeldHITLBranchOperator
from airflow_provider_buddy.sensors.gorules import GoRulesRunSensor

PROJECT = "{{ params.project_id }}"

with DAG(
    dag_id="gorules_release",
    description="Deploy a GoRules rules release to staging, gate it in Airflow, cancel on reject",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["gorules", "release"],
    params={
        "project_id": Param(type="string", minLength=1, description="BRMS project id"),
        "release_id": Param(type="string", minLength=1, description="Release to deploy"),
        "environment_id": Param(type="string", minLength=1, description="Id of the staging environment"),
    },
) as dag:
    deploy = GoRulesDeployReleaseOperator(
        task_id="deploy_to_staging",
        project_id=PROJECT,
        release_id="{{ params.release_id }}",
        environment_id="{{ params.environment_id }}",
        comment="Rules release from Airflow ({{ dag.dag_id }}, {{ run_id }})",
        on_approval="succeed",
        deferrable=True,
        poll_interval=15,
        retries=2,
        execution_timeout=timedelta(hours=1),
    )

    @task
    def gate_text(summary: dict[str, Any]) -> str:
        """What the reviewer reads: the run, where it waits for review, and what each answer does."""
        waiting = ", ".join(summary.get("waiting_environments") or []) or "no environment (it went on)"
        return (
            f"Deployment workflow run {summary['run_id']} of {summary.get('release') or 'the release'} waits for review on: "
            f"{waiting}.\n\n{summary.get('run_url')}\n\n"
            "Promote: wait for it to complete (approve the review in the BRMS). Reject: cancel it."
        )

    gate = HeldHITLBranchOperator(
        task_id="gate",
        subject="Promote GoRules release {{ params.release_id }}?",
        body=gate_text(deploy.output["summary"]),
        options=["Promote", "Reject"],
        options_mapping={"Promote": "wait_for_rollout", "Reject": "cancel_rollout"},
        defaults=["Reject"],
        response_timeout=timedelta(days=1),
    )

    wait_for_rollout = GoRulesRunSensor(
        task_id="wait_for_rollout",
        project_id=PROJECT,
        run_id=deploy.output,
        deferrable=True,
        poke_interval=30,
        timeout=6 * 3600,
    )

    cancel_rollout = GoRulesCancelRunOperator(
        task_id="cancel_rollout",
        project_id=PROJECT,
        run_id=deploy.output,
        comment="Rejected at the Airflow gate of {{ dag.dag_id }} ({{ run_id }})",
    )

    gate >> [wait_for_rollout, cancel_rollout]
