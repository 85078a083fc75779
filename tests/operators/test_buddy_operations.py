"""Buddy operators in real Airflow (dag.test) against the emulator: the approve operator answers each wait with its own
operation (APPROVE_VT, SET_VARIABLES), a scheduled run is started now (RUN_DELAYED), ``on_approval="approve"`` approves a
visual-test session, a pipeline hidden from the list is run by its identifier, and a NOT_EXECUTED run ends the wait."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.operators.buddy import (
    BuddyApproveExecutionOperator,
    BuddyRunPipelineOperator,
    BuddyRunScheduledExecutionOperator,
)
from airflow_provider_buddy.testing import BuddyEmulator
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture

pytestmark = pytest.mark.usefixtures("airflow_db", "buddy_conn")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
_ids = itertools.count()

VISUAL = [
    {"id": 70, "name": "Screenshots", "type": "BUILD", "duration": 2},
    {"id": 71, "name": "Approve visual tests", "type": "APPROVE_VT"},
    {"id": 72, "name": "Deploy", "type": "BUILD", "duration": 2},
]
SETTABLE = [{"id": 80, "name": "Set version", "type": "SET_VARIABLES", "variables": [{"key": "VERSION", "value": "1.0"}]}]
BUILD = [{"id": 10, "name": "Build", "type": "BUILD", "duration": 4}]


@pytest.fixture(autouse=True)
def pipelines(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="visual", name="Visual", actions=VISUAL, wait_shown_on="action")
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="settable", name="Settable", actions=SETTABLE)
    emulator.add_pipeline(project="web", pipeline_id=9, identifier="build-only", name="Build only", actions=BUILD)


def one_task_dag(make: Callable[[], Any]) -> DAG:
    with DAG(dag_id=f"ops_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        make()
    return dag


def patches(emulator: BuddyEmulator, pipeline_id: int) -> list[tuple[dict[str, Any], int | None]]:
    return [(r.json, r.status) for r in emulator.requests_to("PATCH", rf"/pipelines/{pipeline_id}/executions/\d+$")]


def waiting(emulator: BuddyEmulator, pipeline_id: int) -> dict[str, Any]:
    run = emulator.start_execution("web", pipeline_id)
    emulator.advance(5)
    emulator.speed = 0  # it waits for a person now, however slow this machine is
    return run


# ---- BuddyApproveExecutionOperator -------------------------------------------------------------------
def test_approve_operator_approves_a_visual_test_session(emulator: BuddyEmulator, logs: LogCapture) -> None:
    run = waiting(emulator, 7)
    dag = one_task_dag(
        lambda: BuddyApproveExecutionOperator(task_id="approve", project_name="web", pipeline_id="visual", execution_id=run["id"])
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"approve": "success"}
    aeid = emulator.execution("web", 7, run["id"])["action_executions"][1]["action_execution_id"]
    assert patches(emulator, 7) == [({"operation": "APPROVE_VT", "approve_action_id": aeid}, 200)]
    assert "(APPROVE_VT)" in logs.text


def test_approve_operator_sets_settable_variables(emulator: BuddyEmulator, logs: LogCapture) -> None:
    run = waiting(emulator, 8)
    dag = one_task_dag(
        lambda: BuddyApproveExecutionOperator(
            task_id="approve", project_name="web", pipeline_id=8, execution_id=run["id"], variables={"VERSION": "2.0"}
        )
    )
    assert states(run_dag(dag)) == {"approve": "success"}
    [(body, status)] = patches(emulator, 8)
    assert status == 200 and body["operation"] == "SET_VARIABLES" and body["variables"] == [{"key": "VERSION", "value": "2.0"}]
    assert emulator.execution("web", 8, run["id"])["action_executions"][0]["passed_variables"][0]["value"] == "2.0"


def test_approve_operator_refuses_variables_for_a_visual_test_wait(emulator: BuddyEmulator, logs: LogCapture) -> None:
    run = waiting(emulator, 7)
    dag = one_task_dag(
        lambda: BuddyApproveExecutionOperator(
            task_id="approve", project_name="web", pipeline_id=7, execution_id=run["id"], variables={"A": "1"}
        )
    )
    assert states(run_dag(dag)) == {"approve": "failed"}
    assert "waits for WAITING_FOR_VT_SESSION, not for variables" in logs.text and patches(emulator, 7) == []


# ---- BuddyRunScheduledExecutionOperator ----------------------------------------------------------------
@pytest.mark.parametrize("delayed_status", ["ENQUEUED", "INITIAL"])
def test_scheduled_run_is_started_now_and_waited_on(emulator: BuddyEmulator, delayed_status: str, logs: LogCapture) -> None:
    emulator.configure_buddy(delayed_status=delayed_status)
    later = (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()
    scheduled = emulator.start_execution("web", 9, delay_until=later)
    assert scheduled["status"] == delayed_status
    dag = one_task_dag(
        lambda: BuddyRunScheduledExecutionOperator(
            task_id="now",
            project_name="web",
            pipeline_id="build-only",
            execution_id=scheduled["id"],
            wait_for_completion=True,
            poll_interval=0.1,
        )
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"now": "success"} and xcom(dag_run, "now") == scheduled["id"]
    assert patches(emulator, 9) == [({"operation": "RUN_DELAYED"}, 200)]
    assert xcom(dag_run, "now", "summary")["status"] == "SUCCESSFUL"
    assert "(RUN_DELAYED, scheduled for" in logs.text


def test_a_run_that_already_started_is_left_alone(emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.speed = 0
    going = emulator.start_execution("web", 9)
    dag = one_task_dag(
        lambda: BuddyRunScheduledExecutionOperator(task_id="now", project_name="web", pipeline_id=9, execution_id=going["id"])
    )
    assert states(run_dag(dag)) == {"now": "success"}
    assert patches(emulator, 9) == [] and "already started (INPROGRESS); RUN_DELAYED not sent" in logs.text


def test_a_run_that_ended_fails_the_task(emulator: BuddyEmulator, logs: LogCapture) -> None:
    done = emulator.start_execution("web", 9)
    emulator.advance(100)
    dag = one_task_dag(
        lambda: BuddyRunScheduledExecutionOperator(task_id="now", project_name="web", pipeline_id=9, execution_id=done["id"])
    )
    assert states(run_dag(dag)) == {"now": "failed"}
    assert "has already ended (SUCCESSFUL); there is nothing to start" in logs.text and patches(emulator, 9) == []


# ---- BuddyRunPipelineOperator --------------------------------------------------------------------------
@MODES
def test_on_approval_approve_approves_a_visual_test_session(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id="visual", on_approval="approve", poll_interval=0.1, deferrable=deferrable
        )
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"} and xcom(dag_run, "run", "summary")["status"] == "SUCCESSFUL"
    assert [body["operation"] for body, status in patches(emulator, 7) if status == 200] == ["APPROVE_VT"]
    assert "at action 'Approve visual tests' (APPROVE_VT)" in logs.text


def test_run_a_hidden_pipeline_by_its_identifier(emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_pipeline(project="web", pipeline_id=12, identifier="secret-release", name="Secret release", actions=BUILD, hidden=True)
    dag = one_task_dag(lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id="secret-release", poll_interval=0.1))
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"} and emulator.executions("web", 12)[0]["id"] == xcom(dag_run, "run")
    assert "Pipeline 'secret-release' is pipeline 12" in logs.text
    assert emulator.requests_to("GET", r"/identifiers$") and not emulator.requests_to("GET", r"/projects/web/pipelines$")


def test_not_executed_ends_the_worker_wait(emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=13, identifier="never", name="Never", actions=BUILD, outcome="NOT_EXECUTED", enqueued_for=20
    )
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id=13, poll_interval=0.1, deferrable=False, execution_timeout=timedelta(seconds=90)
        )
    )
    assert states(run_dag(dag)) == {"run": "failed"}
    assert "BuddyExecutionSkippedError" in logs.text and "ended without running (status NOT_EXECUTED)" in logs.text
    assert "Gave up waiting" not in logs.text
