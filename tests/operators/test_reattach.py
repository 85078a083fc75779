"""What a retried or cleared run task does with the run an earlier try started (real Airflow, emulator over HTTP).

An automatic retry carries on with its attempt's run: waits on it if going, takes a success as it is,
retries a failure in Buddy. A task cleared by a person runs the pipeline again (unless its run is going).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.operators.reattach import first_try_of_generation, marked_comment, marked_try, task_marker
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture

RUNS = r"/pipelines/9/executions$"
ONE_EXECUTION = r"/pipelines/9/executions/\d+$"
_ids = itertools.count()
FLAKY: dict[str, Any] = {
    "project": "web",
    "pipeline_id": 9,
    "identifier": "flaky",
    "actions": [{"id": 91, "name": "Integration tests", "type": "BUILD", "duration": 1}],
    "outcome": "FAILED",
    "fail_action": 91,
}


def ti(**fields: Any) -> SimpleNamespace:
    return SimpleNamespace(**{"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, **fields})


# ---- the marker --------------------------------------------------------------------------------------
def test_marker_carries_the_try_and_is_read_back() -> None:
    context = {"ti": ti(try_number=3)}
    marker = task_marker(context)
    comment = marked_comment("Release main", marker, context, try_number=3)
    assert comment == f"Release main {marker} (try 3)" and marked_try(comment, marker) == 3
    assert marked_try(f"Release main {marker}", marker) is None  # a run marked without the try
    assert marked_try("Release main [airflow:0000000000000000] (try 3)", marker) is None  # another task's run
    assert marked_comment(None, marker, context) == f"Started by Airflow: d.t {marker}"
    assert task_marker({"ti": ti(try_number=1, map_index=2)}) != marker


@pytest.mark.parametrize(
    ("try_number", "max_tries", "retries", "first"),
    [
        (1, 2, 2, 1),  # the first try of a task with 2 retries
        (3, 2, 2, 1),  # its second automatic retry
        (4, 5, 2, 4),  # cleared after try 3: max_tries = 3 + 2, a new generation from try 4
        (5, 5, 2, 4),  # an automatic retry after that clear
        (2, None, 2, 2),  # max_tries unknown: no earlier try counts as this attempt
        (1, 7, 0, 1),  # never earlier than the running try... (clamped)
    ],
)
def test_first_try_of_generation_follows_airflows_reckoning(try_number: int, max_tries: int | None, retries: int, first: int) -> None:
    assert first_try_of_generation(ti(try_number=try_number, max_tries=max_tries), retries) == first


# ---- in Airflow --------------------------------------------------------------------------------------
def run_task(**kwargs: Any) -> DAG:
    with DAG(dag_id=f"reattach_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=9, poll_interval=0.1, retry_delay=timedelta(0), **kwargs)
    return dag


def posts(emulator: BuddyEmulator) -> int:
    return len(emulator.requests_to("POST", RUNS))


def operations(emulator: BuddyEmulator) -> list[str]:
    return [r.json["operation"] for r in emulator.requests_to("PATCH", ONE_EXECUTION)]


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_retry_takes_a_succeeded_run_and_a_clear_runs_again(emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=9, identifier="instant", actions=[{"id": 90, "name": "Build", "type": "BUILD", "duration": 0}]
    )
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=ONE_EXECUTION))  # try 1 fails after its run succeeded
    dag = run_task(retries=1)
    when = datetime(2026, 6, 6, tzinfo=timezone.utc)
    dag_run = run_dag(dag, logical_date=when)
    (run,) = emulator.executions("web", 9)
    assert states(dag_run) == {"run": "success"} and dag_run.get_task_instance("run").try_number == 2
    assert posts(emulator) == 1 and run["status"] == "SUCCESSFUL" and run["comment"].endswith("(try 1)")
    assert xcom(dag_run, "run") == run["id"] and xcom(dag_run, "run", "summary")["status"] == "SUCCESSFUL"
    assert "started by try 1, already ended SUCCESSFUL: taking its result" in logs.text

    again = run_dag(dag, logical_date=when)  # the same DAG run again (dag.test recreates it: its tries count from 1)
    new, old = emulator.executions("web", 9)
    assert old["id"] == run["id"] and posts(emulator) == 2 and new["comment"].endswith("(try 1)")
    assert states(again) == {"run": "success"} and xcom(again, "run") == new["id"]
    assert "already ended (SUCCESSFUL) before the task was cleared; starting a new run" in logs.text


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
def test_retry_after_a_failed_run_retries_it_in_buddy(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    emulator.add_pipeline(**FLAKY, retry_outcome="SUCCESSFUL")
    dag_run = run_dag(run_task(retries=1, deferrable=deferrable))
    (run,) = emulator.executions("web", 9)
    assert states(dag_run) == {"run": "success"} and dag_run.get_task_instance("run").try_number == 2
    assert posts(emulator) == 1 and operations(emulator) == ["RETRY"] and run["status"] == "SUCCESSFUL"
    assert xcom(dag_run, "run") == run["id"] and xcom(dag_run, "run", "summary")["status"] == "SUCCESSFUL"
    assert "instead of starting a new run" in logs.text


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
@pytest.mark.parametrize(("retry_failed_run", "refused"), [(False, False), (True, True)], ids=["asked-not-to", "buddy-refuses"])
def test_retry_after_a_failed_run_starts_a_new_one_when_not_retried(
    emulator: BuddyEmulator, retry_failed_run: bool, refused: bool, logs: LogCapture
) -> None:
    emulator.add_pipeline(**FLAKY, retry_outcome="FAILED")
    if refused:
        emulator.add_fault(
            Fault(kind="status", status=400, method="PATCH", path=ONE_EXECUTION, body={"errors": [{"message": "Cannot retry"}]})
        )
    dag_run = run_dag(run_task(retries=1, retry_failed_run=retry_failed_run))
    second, first = emulator.executions("web", 9)
    assert states(dag_run) == {"run": "failed"} and dag_run.get_task_instance("run").try_number == 2
    assert posts(emulator) == 2 and first["comment"].endswith("(try 1)") and second["comment"].endswith("(try 2)")
    assert operations(emulator) == (["RETRY"] if refused else [])
    assert ("Buddy refused to retry" in logs.text) is refused
    assert ("started by try 1, ended FAILED; starting a new run" in logs.text) is not refused


def test_retry_failed_run_is_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="retry_failed_run"):
        BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=9, retry_failed_run="yes")  # type: ignore[arg-type]
