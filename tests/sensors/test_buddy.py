"""BuddyExecutionSensor in real Airflow (dag.test), poke and deferrable mode, against the emulator."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import requires_airflow, run_dag, states, xcom
from tests.conftest import LogCapture
from tests.emulator_clock import clock_held_until_answered

pytestmark = pytest.mark.usefixtures("airflow_db", "buddy_conn")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
_ids = itertools.count()
EXECUTION = r"/executions/\d+$"

SLOW = [
    {"id": 10, "name": "Compile", "type": "BUILD", "duration": 10, "log": ["compiling", "done"]},
    {"id": 11, "name": "Test", "type": "BUILD", "duration": 10, "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}]},
]
GATE = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 10},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Deploy production", "type": "BUILD", "duration": 1},
]
ASK = [
    {"id": 29, "name": "Prepare", "type": "BUILD", "duration": 10},
    {"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]},
]
LONG = [{"id": 50, "name": "Migrate", "type": "BUILD", "duration": 100000}]
FAILING = [{"id": 40, "name": "Unit tests", "type": "BUILD", "duration": 20, "log": [f"pytest line {i}" for i in range(70)]}]


def sensor_dag(emulator: BuddyEmulator, pipeline_id: int, deferrable: bool, **kwargs: Any) -> DAG:
    """A task that starts a run (as something else would), then the sensor waiting on it by templated id."""
    with DAG(dag_id=f"sensor_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

        @task(task_id="start")
        def start() -> int:
            return int(emulator.start_execution("web", pipeline_id)["id"])

        start() >> BuddyExecutionSensor(
            task_id="wait",
            project_name="web",
            pipeline_id=pipeline_id,
            execution_id="{{ ti.xcom_pull(task_ids='start') }}",
            poke_interval=0.1,
            deferrable=deferrable,
            **{"timeout": 60, **kwargs},
        )
    return dag


def last_run(emulator: BuddyEmulator, pipeline_id: int) -> dict[str, Any]:
    return emulator.executions("web", pipeline_id)[0]


def assert_mode(logs: LogCapture, deferrable: bool) -> None:
    assert ("Waiting in the triggerer on Buddy execution" in logs.text) is deferrable


@MODES
def test_success_returns_summary_and_link(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="slow", name="Slow", actions=SLOW)
    with clock_held_until_answered(emulator, EXECUTION):
        dag_run = run_dag(sensor_dag(emulator, 7, deferrable))
    run = last_run(emulator, 7)
    assert states(dag_run) == {"start": "success", "wait": "success"}
    assert_mode(logs, deferrable)
    assert xcom(dag_run, "wait") == {
        "execution_id": run["id"],
        "status": "SUCCESSFUL",
        "html_url": run["html_url"],
        "outputted_variables": {"VERSION": "1.2.3"},
    }
    assert xcom(dag_run, "wait", "_link_BuddyExecutionLink") == run["html_url"]


@MODES
def test_failure_names_action_error_and_log_tail(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    emulator.add_pipeline(
        project="web",
        pipeline_id=4,
        identifier="t",
        name="T",
        actions=FAILING,
        outcome="FAILED",
        fail_action=40,
        error_message="2 tests failed",
    )
    with clock_held_until_answered(emulator, EXECUTION):
        dag_run = run_dag(sensor_dag(emulator, 4, deferrable, log_tail_lines=3))
    run = last_run(emulator, 4)
    assert states(dag_run) == {"start": "success", "wait": "failed"}
    assert_mode(logs, deferrable)
    text = logs.text
    assert "BuddyExecutionFailedError" in text and "'Unit tests'" in text and "2 tests failed" in text
    assert run["html_url"] in text and "Last 3 log lines of Unit tests" in text and "pytest line 69" in text


@MODES
@pytest.mark.parametrize(("outcome", "error"), [("TERMINATED", "BuddyExecutionCancelledError"), ("SKIPPED", "BuddyExecutionSkippedError")])
def test_cancelled_and_skipped_fail(emulator: BuddyEmulator, deferrable: bool, outcome: str, error: str, logs: LogCapture) -> None:
    emulator.add_pipeline(project="web", pipeline_id=5, identifier="o", name="O", actions=FAILING, outcome=outcome)
    assert states(run_dag(sensor_dag(emulator, 5, deferrable)))["wait"] == "failed"
    assert error in logs.text


def test_skipped_is_success(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=5, identifier="o", name="O", actions=FAILING, outcome="SKIPPED")
    dag_run = run_dag(sensor_dag(emulator, 5, True, skipped_is_success=True))
    assert states(dag_run)["wait"] == "success" and xcom(dag_run, "wait")["status"] == "SKIPPED"


@MODES
@pytest.mark.parametrize("shown_on", ["execution", "action"])
def test_on_approval_succeed_returns_the_gate(emulator: BuddyEmulator, deferrable: bool, shown_on: str) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on=shown_on)
    dag_run = run_dag(sensor_dag(emulator, 2, deferrable, on_approval="succeed"))
    result = xcom(dag_run, "wait")
    assert states(dag_run)["wait"] == "success"
    assert result["waits_for"] == "approval" and result["waiting_action_name"] == "Approve production"
    assert result["waiting_action_execution_id"]


@MODES
def test_on_approval_fail_names_the_action(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    assert states(run_dag(sensor_dag(emulator, 2, deferrable, on_approval="fail")))["wait"] == "failed"
    run = last_run(emulator, 2)
    text = logs.text
    assert "BuddyApprovalRequiredError" in text and "'Approve production'" in text and run["html_url"] in text


@MODES
def test_on_approval_approve_applies_once(emulator: BuddyEmulator, deferrable: bool) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    dag_run = run_dag(sensor_dag(emulator, 2, deferrable, on_approval="approve"))
    run = last_run(emulator, 2)
    assert states(dag_run)["wait"] == "success" and xcom(dag_run, "wait")["status"] == "SUCCESSFUL"
    sent = [r.json for r in emulator.requests_to("PATCH", rf"/executions/{run['id']}$")]
    assert len(sent) == 1 and sent[0]["operation"] == "APPLY"


@MODES
def test_on_approval_approve_with_encrypted_variables(emulator: BuddyEmulator, deferrable: bool) -> None:
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="n", name="N", actions=ASK)
    answers = [{"key": "NOTES", "value": "s3cr3t-notes", "encrypted": True}]
    dag_run = run_dag(sensor_dag(emulator, 3, deferrable, on_approval="approve", approval_variables=answers))
    run = last_run(emulator, 3)
    assert states(dag_run)["wait"] == "success"
    sent = [r.json for r in emulator.requests_to("PATCH", rf"/executions/{run['id']}$")]
    assert sent == [
        {
            "operation": "APPLY_VARIABLES",
            "variables": [{"key": "NOTES", "value": "s3cr3t-notes", "encrypted": True}],
            "approve_action_id": sent[0]["approve_action_id"],
        }
    ]


def test_execution_id_templated_from_upstream_xcom(emulator: BuddyEmulator) -> None:
    run = emulator.start_execution("web", 1)
    with DAG(dag_id=f"sensor_tpl_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

        @task(task_id="start")
        def start() -> int:
            return int(run["id"])

        start() >> BuddyExecutionSensor(
            task_id="wait",
            project_name="web",
            pipeline_id="{{ 1 }}",
            execution_id="{{ ti.xcom_pull(task_ids='start') }}",
            poke_interval=0.1,
            deferrable=True,
        )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"start": "success", "wait": "success"}
    assert xcom(dag_run, "wait")["execution_id"] == run["id"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_approval": "sometimes"}, "on_approval must be one of"),
        ({"execution_id": 0}, "execution_id must be a positive whole number"),
        ({"execution_id": "abc"}, "execution_id must be a positive whole number"),
        ({"pipeline_id": -1}, "pipeline_id must be a positive whole number"),
        ({"pipeline_id": ""}, "pipeline_id must be a non-empty string"),
        ({"project_name": " "}, "project_name must be a non-empty string"),
        ({"approval_variables": "KEY=1"}, "approval_variables"),
        ({"log_tail_lines": -5}, "log_tail_lines"),
    ],
)
def test_bad_parameters_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"task_id": "w", "project_name": "web", "pipeline_id": 1, "execution_id": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        BuddyExecutionSensor(**values)


@MODES
def test_buddy_not_answering_well_does_not_end_the_wait(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    """Eight 503s in a row outlast the hook's retries (3) twice over: the sensor keeps waiting, in its first try."""
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="slow", name="Slow", actions=SLOW)
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=EXECUTION, times=8))
    dag_run = run_dag(sensor_dag(emulator, 7, deferrable))
    assert states(dag_run) == {"start": "success", "wait": "success"} and dag_run.get_task_instance("wait").try_number == 1
    assert xcom(dag_run, "wait")["status"] == "SUCCESSFUL" and emulator.faults == []
    assert "still waiting, looking again later" in logs.text


@MODES
def test_timeout_fails_without_a_retry_as_airflow_sensors_do(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    """The sensor's timeout passes (in the triggerer: the trigger's deadline): AirflowSensorTimeout, so no retry; the run goes on."""
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", name="Long", actions=LONG)
    dag_run = run_dag(sensor_dag(emulator, 8, deferrable, timeout=1.5, retries=2, retry_delay=timedelta(0)))
    assert states(dag_run) == {"start": "success", "wait": "failed"} and dag_run.get_task_instance("wait").try_number == 1
    assert "AirflowSensorTimeout" in logs.text and "Sensor has timed out" in logs.text
    assert_mode(logs, deferrable)
    run = last_run(emulator, 8)
    assert run["status"] == "INPROGRESS" and emulator.requests_to("PATCH", EXECUTION) == []  # a sensor never cancels


def test_timeout_with_soft_fail_skips_in_deferrable_mode(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", name="Long", actions=LONG)
    dag_run = run_dag(sensor_dag(emulator, 8, True, timeout=1, soft_fail=True))
    assert states(dag_run) == {"start": "success", "wait": "skipped"}


@requires_airflow(
    "3.2",
    "Airflow 3.1's scheduler does not honour start_from_trigger (its code for it is commented out) and it has no "
    "DagSerialization; the sensor runs execute() there",
)
def test_a_deferrable_sensor_starts_in_the_triggerer_as_airflow_serializes_it() -> None:
    """What the scheduler reads (the serialized DAG) says: a deferrable sensor with literal arguments starts in the
    triggerer; one with a template or an XComArg does not (Airflow 3.3's triggerer cannot pull XComs to render it), nor
    one given encrypted answers, nor one waiting in a worker."""
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import BaseSerialization, DagSerialization

    with DAG(dag_id="start_in_triggerer", schedule=None) as dag:
        BuddyExecutionSensor(task_id="sense", project_name="web", pipeline_id="build", execution_id=7, deferrable=True)
        BuddyExecutionSensor(
            task_id="templated", project_name="web", pipeline_id=1, execution_id="{{ ti.xcom_pull('run') }}", deferrable=True
        )
        BuddyExecutionSensor(task_id="poke", project_name="web", pipeline_id=1, execution_id=1, deferrable=False)
        BuddyExecutionSensor(
            task_id="secret",
            project_name="web",
            pipeline_id=1,
            execution_id=1,
            deferrable=True,
            on_approval="approve",
            approval_variables=[{"key": "K", "value": "s3cr3t-value", "encrypted": True}],
        )
    loaded = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    sense = loaded.get_task("sense")
    assert sense.start_from_trigger is True
    assert sense.start_trigger_args.trigger_cls == "airflow_provider_buddy.triggers.buddy.BuddyExecutionTrigger"
    kwargs = BaseSerialization.deserialize(sense.start_trigger_args.trigger_kwargs)  # as the scheduler decodes them
    assert kwargs["execution_id"] == 7 and kwargs["pipeline_id"] == "build" and kwargs["end_in_triggerer"]["returns"] == "summary"
    assert not any(loaded.get_task(t).start_from_trigger for t in ("poke", "secret", "templated"))
    assert loaded.get_task("secret").start_trigger_args is None  # encrypted answers never go into trigger kwargs


def test_not_executed_ends_the_poke(emulator: BuddyEmulator, logs: LogCapture) -> None:
    """NOT_EXECUTED is an ended "not run" status: the poking sensor fails on it at once instead of waiting for its timeout."""
    emulator.add_pipeline(project="web", pipeline_id=6, identifier="n", name="N", actions=FAILING, outcome="NOT_EXECUTED", enqueued_for=20)
    dag_run = run_dag(sensor_dag(emulator, 6, False))
    assert states(dag_run)["wait"] == "failed"
    assert "BuddyExecutionSkippedError" in logs.text and "ended without running (status NOT_EXECUTED)" in logs.text
    assert "AirflowSensorTimeout" not in logs.text
