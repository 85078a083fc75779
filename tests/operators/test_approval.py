"""BuddyApprovalOperator in real Airflow: the request goes through Airflow's human-in-the-loop
machinery and is answered over Airflow's REST API, as a person's browser would."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.operators.approval import BuddyApprovalOperator
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import HitlResponder, requires_airflow, run_dag, serve_hitl_reads_in_dag_test, states, xcom
from tests.conftest import LogCapture

pytestmark = pytest.mark.usefixtures("airflow_db", "buddy_conn")
_ids = itertools.count()

GATE = [
    {"id": 20, "name": "Deploy to staging", "type": "BUILD", "duration": 2},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Deploy to production", "type": "BUILD", "duration": 4},
]
ASK = [
    {
        "id": 30,
        "name": "Release details",
        "type": "WAIT_FOR_VARIABLES",
        "variables": [{"key": "RELEASE_NOTES", "value": "tbd"}, {"key": "VERSION", "value": "1.0"}],
    },
    {"id": 31, "name": "Publish", "type": "BUILD", "duration": 2},
]


@pytest.fixture
def responder(airflow_api: Any) -> HitlResponder:
    return HitlResponder(airflow_api)


@pytest.fixture(autouse=True)
def pipelines(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=2, identifier="deploy-staging", name="Deploy staging", actions=GATE, wait_shown_on="action"
    )
    emulator.add_pipeline(
        project="web", pipeline_id=3, identifier="release-notes", name="Release notes", actions=ASK, wait_shown_on="execution"
    )


def gate_dag(pipeline: str) -> DAG:
    with DAG(dag_id=f"gate_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        run = BuddyRunPipelineOperator(
            task_id="deploy", project_name="web", pipeline_id=pipeline, on_approval="succeed", poll_interval=0.1, deferrable=True
        )
        gate = BuddyApprovalOperator(
            task_id="gate", project_name="web", pipeline_id=pipeline, execution_id="{{ ti.xcom_pull(task_ids='deploy') }}"
        )
        finish = BuddyExecutionSensor(
            task_id="production",
            project_name="web",
            pipeline_id=pipeline,
            execution_id="{{ ti.xcom_pull(task_ids='deploy') }}",
            poke_interval=0.1,
            deferrable=True,
        )
        run >> gate >> finish
    return dag


def sent(emulator: BuddyEmulator, pipeline_id: int) -> list[dict[str, Any]]:
    return [r.json for r in emulator.requests_to("PATCH", rf"/pipelines/{pipeline_id}/executions/\d+$") if r.status == 200]


def test_approve_in_airflow_applies_in_buddy_once(emulator: BuddyEmulator, responder: HitlResponder) -> None:
    dag = gate_dag("deploy-staging")
    responder.answer(dag.dag_id, "gate", "Approve")
    dag_run = run_dag(dag)
    responder.join()
    assert responder.answers[0][0] == 200
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "success"}
    waiting_id = xcom(dag_run, "deploy", "summary")["waiting_action_execution_id"]
    assert sent(emulator, 2) == [{"operation": "APPLY", "approve_action_id": waiting_id}]
    decision = xcom(dag_run, "gate", "buddy_decision")
    assert decision["decision"] == "approved" and decision["operation"] == "APPLY"
    assert decision["responded_by"]["name"] and decision["responded_at"]
    assert xcom(dag_run, "gate", "_link_BuddyExecutionLink") == emulator.executions("web", 2)[0]["html_url"]
    assert xcom(dag_run, "production")["status"] == "SUCCESSFUL"
    action = emulator.executions("web", 2)[0]["action_executions"][1]
    assert action["approval_date"] is not None  # recorded on Buddy's side too


def test_request_names_pipeline_execution_wait_creator_and_link(emulator: BuddyEmulator, responder: HitlResponder) -> None:
    dag = gate_dag("deploy-staging")
    responder.answer(dag.dag_id, "gate", "Approve")
    run_dag(dag)
    responder.join()
    execution = emulator.executions("web", 2)[0]
    detail = responder.details["gate"]
    assert "Deploy staging" in detail["subject"] and str(execution["id"]) in detail["subject"]
    body = detail["body"]
    assert "Approve production" in body and execution["html_url"] in body and execution["creator"]["name"] in body
    assert detail["options"] == ["Approve", "Reject"]


def test_reject_cancels_in_buddy_and_skips_downstream(emulator: BuddyEmulator, responder: HitlResponder) -> None:
    dag = gate_dag("deploy-staging")
    responder.answer(dag.dag_id, "gate", "Reject")
    dag_run = run_dag(dag)
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "skipped"}
    assert sent(emulator, 2) == [{"operation": "CANCEL"}]
    assert emulator.executions("web", 2)[0]["status"] == "TERMINATED"
    assert xcom(dag_run, "gate", "buddy_decision")["decision"] == "rejected"


def test_variables_prompt_becomes_a_form_answered_with_apply_variables(emulator: BuddyEmulator, responder: HitlResponder) -> None:
    dag = gate_dag("release-notes")
    responder.answer(dag.dag_id, "gate", "Approve", params_input={"RELEASE_NOTES": "Faster builds", "VERSION": "2.0"})
    dag_run = run_dag(dag)
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "success"}
    form = responder.details["gate"]["params"]
    assert form["RELEASE_NOTES"]["value"] == "tbd" and form["VERSION"]["value"] == "1.0"
    (patch,) = sent(emulator, 3)
    assert patch["operation"] == "APPLY_VARIABLES"
    assert patch["variables"] == [{"key": "RELEASE_NOTES", "value": "Faster builds"}, {"key": "VERSION", "value": "2.0"}]


def test_approval_given_in_buddy_meanwhile_is_not_applied_twice(
    emulator: BuddyEmulator, responder: HitlResponder, logs: LogCapture
) -> None:
    dag = gate_dag("deploy-staging")

    def someone_approves_in_buddy() -> None:
        execution = emulator.executions("web", 2)[0]
        emulator.approve_in_buddy("web", 2, execution["id"])

    responder.answer(dag.dag_id, "gate", "Approve", before=someone_approves_in_buddy)
    dag_run = run_dag(dag)
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "success"}
    assert sent(emulator, 2) == []
    assert "answered in Buddy meanwhile; not applying again" in logs.text
    assert xcom(dag_run, "gate", "buddy_decision")["operation"] is None


def test_already_answered_in_buddy_succeeds_without_asking(emulator: BuddyEmulator) -> None:
    execution = emulator.start_execution("web", 2)
    emulator.advance(5)
    emulator.approve_in_buddy("web", 2, execution["id"])
    emulator.speed = 0  # approved and still going, however slow this machine is
    with DAG(dag_id=f"gate_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyApprovalOperator(task_id="gate", project_name="web", pipeline_id=2, execution_id=execution["id"])
    dag_run = run_dag(dag)
    assert states(dag_run) == {"gate": "success"}
    assert xcom(dag_run, "gate", "buddy_decision")["decision"] == "answered_in_buddy"
    assert sent(emulator, 2) == []


def test_finished_execution_is_a_clear_error(emulator: BuddyEmulator, logs: LogCapture) -> None:
    execution = emulator.start_execution("web", 2)
    emulator.advance(5)
    emulator.approve_in_buddy("web", 2, execution["id"])
    emulator.advance(100)
    with DAG(dag_id=f"gate_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyApprovalOperator(task_id="gate", project_name="web", pipeline_id=2, execution_id=execution["id"])
    assert states(run_dag(dag)) == {"gate": "failed"}
    assert "has already ended (SUCCESSFUL); there is nothing to approve" in logs.text


def test_parse_time_checks() -> None:
    with pytest.raises(ValueError, match="execution_id must be a positive whole number"):
        BuddyApprovalOperator(task_id="g", project_name="web", pipeline_id=2, execution_id="x")
    with pytest.raises(ValueError, match="project_name must be a non-empty string"):
        BuddyApprovalOperator(task_id="g", project_name="", pipeline_id=2, execution_id=1)


@requires_airflow(
    "3.3",
    "only Airflow 3.3 keeps an earlier try's HITL answer (hitl_detail_history); on 3.1 the retry's new request wipes "
    "it (execution API upsert_hitl_detail), so there is no recorded answer to apply",
)
def test_a_gate_retried_after_its_answer_applies_the_recorded_answer_without_asking_again(
    emulator: BuddyEmulator, responder: HitlResponder, logs: LogCapture
) -> None:
    """Airflow fails the try after the person answered (its defer race does that to answers given within seconds; here
    Buddy's answer to the read before applying is lost). The retry applies the answer Airflow recorded, once, from
    the triggerer: it does not ask again (that would erase the answer and wait for a second one)."""
    serve_hitl_reads_in_dag_test()
    dag = gate_dag("deploy-staging")
    dag.get_task("gate").retry_delay = timedelta(seconds=0)

    def the_try_will_fail_after_the_answer() -> None:
        emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/pipelines/2/executions/\d+$", times=1))

    responder.answer(dag.dag_id, "gate", "Approve", before=the_try_will_fail_after_the_answer)
    dag_run = run_dag(dag)
    responder.join()
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "success"}
    assert dag_run.get_task_instance("gate").try_number == 2 and len(responder.answers) == 1
    waiting_id = xcom(dag_run, "deploy", "summary")["waiting_action_execution_id"]
    assert sent(emulator, 2) == [{"operation": "APPLY", "approve_action_id": waiting_id}]
    assert "applying the answer Airflow recorded for it" in logs.text and "Approved Buddy execution" in logs.text


def test_visual_test_session_gate_is_approved_with_approve_vt(emulator: BuddyEmulator, responder: HitlResponder) -> None:
    """A visual-test wait is asked in Airflow like any other gate, and Approve sends APPROVE_VT (not APPLY)."""
    visual = [
        {"id": 70, "name": "Approve visual tests", "type": "APPROVE_VT"},
        {"id": 71, "name": "Deploy", "type": "BUILD", "duration": 2},
    ]
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="visual", name="Visual", actions=visual, wait_shown_on="action")
    dag = gate_dag("visual")
    responder.answer(dag.dag_id, "gate", "Approve")
    dag_run = run_dag(dag)
    responder.join()
    assert states(dag_run) == {"deploy": "success", "gate": "success", "production": "success"}
    waiting_id = xcom(dag_run, "deploy", "summary")["waiting_action_execution_id"]
    assert sent(emulator, 7) == [{"operation": "APPROVE_VT", "approve_action_id": waiting_id}]
    assert xcom(dag_run, "gate", "buddy_decision")["operation"] == "APPROVE_VT"
    assert "visual-test session" in responder.details["gate"]["body"]
