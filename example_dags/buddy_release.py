"""
Release orchestration with Buddy.Works: build, deploy to staging, a person approves, production.

1. ``clear_cache``  — clear the build pipeline's cache (fresh dependencies for a release build).
2. ``build``        — run the build pipeline on the chosen branch and wait without holding a worker
                      (deferrable); a retry re-attaches to the same Buddy run instead of starting another.
3. ``deploy_vars``  — a TaskFlow task: the deploy pipeline's variables, the version the build produced
                      (the build's outputted ``VERSION``, from its XCom ``summary``).
4. ``staging``      — run the deploy pipeline with those variables; it deploys to staging and then stops
                      at Buddy's "Wait for approval" step. ``on_approval="succeed"`` ends this task right
                      there, so the DAG puts its own gate next.
5. ``approve``      — the gate, in Airflow's "Required actions" view (human-in-the-loop), on the execution
                      ``staging`` started (``staging.output``). Approve sends APPLY to Buddy's waiting
                      step; Reject cancels the Buddy run and skips production.
6. ``production``   — wait for the same Buddy run to finish its production step.

Values from upstream tasks (``staging.output``, the TaskFlow result) set the dependencies themselves; only
the order that passes no value is written with ``>>``.

Params: ``branch`` and ``comment``. Connection ``buddy_default`` (type ``buddy``). The pipelines are
referred to by their Buddy identifiers. ``make demo`` runs this DAG end to end against the local
Buddy emulator (scenario ``airflow_provider_buddy/testing/scenarios/demo.json``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_buddy.operators.approval import BuddyApprovalOperator
from airflow_provider_buddy.operators.buddy import BuddyClearPipelineCacheOperator, BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor

PROJECT = "web"

with DAG(
    dag_id="buddy_release",
    description="Build, deploy to staging, approve in Airflow, promote to production (Buddy.Works)",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["buddy", "release"],
    params={
        "branch": Param("main", type="string", description="Branch to build and deploy"),
        "comment": Param("Release from Airflow", type="string", description="Comment on the Buddy runs"),
    },
) as dag:
    clear_cache = BuddyClearPipelineCacheOperator(task_id="clear_cache", project_name=PROJECT, pipeline_id="build")

    build = BuddyRunPipelineOperator(
        task_id="build",
        project_name=PROJECT,
        pipeline_id="build",
        branch="{{ params.branch }}",
        comment="{{ params.comment }} (build)",
        deferrable=True,
        poll_interval=2,
        retries=2,
    )

    @task
    def deploy_vars(build_summary: dict[str, Any]) -> dict[str, str]:
        """The deploy pipeline's variables: the version the build produced."""
        return {"VERSION": build_summary["outputted_variables"]["VERSION"]}

    staging = BuddyRunPipelineOperator(
        task_id="staging",
        project_name=PROJECT,
        pipeline_id="deploy-staging",
        branch="{{ params.branch }}",
        comment="{{ params.comment }} (deploy)",
        variables=deploy_vars(build.output["summary"]),
        on_approval="succeed",
        deferrable=True,
        poll_interval=2,
    )

    approve = BuddyApprovalOperator(
        task_id="approve",
        project_name=PROJECT,
        pipeline_id="deploy-staging",
        execution_id=staging.output,  # the run operator returns the execution id
    )

    production = BuddyExecutionSensor(
        task_id="production",
        project_name=PROJECT,
        pipeline_id="deploy-staging",
        execution_id=staging.output,
        deferrable=True,
        poke_interval=2,
        timeout=3600,
    )

    clear_cache >> build
    approve >> production
