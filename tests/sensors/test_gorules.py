"""GoRulesRunSensor in real Airflow (dag.test), poke and deferrable mode, against the emulated BRMS."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.sensors.gorules import GoRulesRunSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture
from tests.emulator_clock import clock_held_until_answered
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("airflow_db", "gorules_conn")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
_ids = itertools.count()


def sensor_dag(brms: Brms, envs: list[str], deferrable: bool, *, cancel: str | None = None, **kwargs: Any) -> DAG:
    """A task that starts a run (as the BRMS UI would), then the sensor waiting on it by templated id."""
    with DAG(dag_id=f"gorules_sensor_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

        @task(task_id="start")
        def start() -> str:
            run_id = str(brms.start(*envs)["id"])
            if cancel is not None:
                brms.emulator.gorules.cancel_run(brms.project_id, run_id, {"comment": cancel})
            return run_id

        start() >> GoRulesRunSensor(
            task_id="wait",
            project_id=brms.project_id,
            run_id="{{ ti.xcom_pull(task_ids='start') }}",
            poke_interval=0.1,
            deferrable=deferrable,
            **{"timeout": 60, **kwargs},
        )
    return dag


def last_run(brms: Brms) -> dict[str, Any]:
    return brms.emulator.gorules_runs(brms.project_id)[0]


@MODES
def test_completed_run_returns_its_summary(brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    with clock_held_until_answered(emulator, r"/runs/[^/]+$"):
        dag_run = run_dag(sensor_dag(brms, ["qa"], deferrable))
    run = last_run(brms)
    assert states(dag_run) == {"start": "success", "wait": "success"}
    assert ("Waiting in the triggerer on GoRules run" in logs.text) is deferrable
    result = xcom(dag_run, "wait")
    assert result["run_id"] == run["id"] and result["status"] == "completed" and result["release"] == "Pricing rules 1.4.0"
    assert result["run_url"] == f"{emulator.url}/api/projects/{brms.project_id}/runs/{run['id']}"
    assert [(j["environment"], j["status"]) for j in result["jobs"]] == [("QA (qa)", "completed")]


@MODES
def test_failed_run_fails_with_jobs_and_environments(brms: Brms, deferrable: bool, logs: LogCapture) -> None:
    dag_run = run_dag(sensor_dag(brms, ["qa", "broken"], deferrable))
    assert states(dag_run)["wait"] == "failed"
    text = logs.text
    assert "GoRulesRunFailedError" in text and "1. QA (qa): completed" in text and "2. Broken (broken): failure" in text
    assert last_run(brms)["id"] in text


def test_cancelled_run_fails_saying_who_and_why(brms: Brms, logs: LogCapture) -> None:
    assert states(run_dag(sensor_dag(brms, ["slow"], True, cancel="rules pulled")))["wait"] == "failed"
    assert "GoRulesRunCancelledError" in logs.text and '("rules pulled")' in logs.text and "Emulator Bot" in logs.text


@MODES
def test_on_approval_succeed_returns_the_gate(brms: Brms, deferrable: bool) -> None:
    dag_run = run_dag(sensor_dag(brms, ["qa", "staging"], deferrable, on_approval="succeed"))
    result = xcom(dag_run, "wait")
    assert states(dag_run)["wait"] == "success" and result["status"] == "waiting"
    assert result["waiting_environments"] == ["Staging (staging)"] and result["jobs"][0]["status"] == "completed"


def test_on_approval_fail_names_pending_environments(brms: Brms, logs: LogCapture) -> None:
    assert states(run_dag(sensor_dag(brms, ["production"], False, on_approval="fail")))["wait"] == "failed"
    assert "GoRulesReviewRequiredError" in logs.text and "Production (production)" in logs.text


@MODES
def test_on_approval_wait_waits_for_the_reviewer(brms: Brms, emulator: BuddyEmulator, deferrable: bool) -> None:
    def reviewer() -> None:  # a person approving in the BRMS UI a little later
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            runs = emulator.gorules_runs(brms.project_id)
            if runs and runs[0]["status"] == "waiting":
                time.sleep(0.5)
                emulator.review_in_gorules(brms.project_id, runs[0]["id"], "staging", comment="ok")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=reviewer, daemon=True)
    thread.start()
    dag_run = run_dag(sensor_dag(brms, ["staging"], deferrable))
    thread.join(5)
    result = xcom(dag_run, "wait")
    assert states(dag_run)["wait"] == "success" and result["status"] == "completed"
    assert result["jobs"][0]["reviewed_by"].startswith("Jane Reviewer") and result["jobs"][0]["reviewed_conclusion"] == "approved"


def test_parse_time_checks(brms: Brms) -> None:
    with pytest.raises(ValueError, match="on_approval='approve' is not available.*BRMS UI"):
        GoRulesRunSensor(task_id="s", project_id=brms.project_id, run_id="r", on_approval="approve")
    with pytest.raises(ValueError, match="run_id must be a non-empty string"):
        GoRulesRunSensor(task_id="s", project_id=brms.project_id, run_id=" ")
    with pytest.raises(ValueError, match="project_id"):
        GoRulesRunSensor(task_id="s", project_id="", run_id="r")
    assert GoRulesRunSensor(task_id="s", project_id="{{ params.p }}", run_id="{{ ti.xcom_pull('x') }}").template_fields == (
        "project_id",
        "run_id",
    )


@MODES
def test_brms_not_answering_well_does_not_end_the_wait(brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    """Eight 503s in a row on the run outlast the hook's retries (3) twice over: the sensor keeps waiting, in its first try."""
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=r"/runs/[^/]+$", times=8))
    dag_run = run_dag(sensor_dag(brms, ["qa"], deferrable))
    assert states(dag_run) == {"start": "success", "wait": "success"} and dag_run.get_task_instance("wait").try_number == 1
    assert xcom(dag_run, "wait")["status"] == "completed" and emulator.faults == []
    assert "still waiting, looking again later" in logs.text


@MODES
def test_timeout_fails_without_a_retry_as_airflow_sensors_do(brms: Brms, deferrable: bool, logs: LogCapture) -> None:
    """The sensor's timeout passes (in the triggerer: the trigger's deadline): AirflowSensorTimeout, so no retry; the run goes on."""
    dag_run = run_dag(sensor_dag(brms, ["slow"], deferrable, timeout=1.5, retries=2, retry_delay=timedelta(0)))
    assert states(dag_run) == {"start": "success", "wait": "failed"} and dag_run.get_task_instance("wait").try_number == 1
    assert "AirflowSensorTimeout" in logs.text and "Sensor has timed out" in logs.text
    assert ("Waiting in the triggerer on GoRules run" in logs.text) is deferrable
    run = last_run(brms)
    assert run["status"] == "in_progress" and brms.cancels(run["id"]) == []  # a sensor never cancels
