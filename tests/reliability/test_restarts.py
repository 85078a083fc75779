"""
Restarts at the worst moments.

The triggerer: a trigger's task is cancelled mid-wait (as a triggerer shutting down does; ``cleanup()``
runs, ``on_kill()`` does not) while its approval or its cancel is in flight — Buddy processed it, the answer
never came back — and a new trigger is built from ``serialize()``: it must end with the right event without
approving or cancelling a second time, and a restart must not cancel anything.
(``tests/triggers/test_buddy.py::test_restart_mid_wait_finishes_without_reapproving`` covers a restart
after an approval whose answer did arrive.)

The worker: it dies (SIGKILL) right after Buddy accepted the run POST, before the answer (and so before any
XCom) reached it; the retry must re-attach to that run, not start a second one. A run POST answered with
a 5xx after Buddy processed it must not end with a second run, and a rerun whose POST never reached Buddy
must not take the previous run's result. (``tests/operators/test_buddy.py`` covers a crash mid-wait
and a POST whose answer timed out.)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture, connection_json

GATES = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 1},
    {"id": 21, "name": "Approve staging", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 23, "name": "Deploy production", "type": "BUILD", "duration": 1},
]
LONG = [{"id": 50, "name": "Deploy", "type": "BUILD", "duration": 10**6}]
RUNS = r"/pipelines/\d+/executions$"


def trigger(execution_id: int, pipeline_id: int, **kwargs: Any) -> BuddyExecutionTrigger:
    return BuddyExecutionTrigger(
        buddy_conn_id="buddy_default", project_name="web", pipeline_id=pipeline_id, execution_id=execution_id, poll_interval=0.05, **kwargs
    )


async def first_event(trig: BuddyExecutionTrigger) -> dict[str, Any]:
    async for event in trig.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


async def shut_down_when(trig: BuddyExecutionTrigger, ready: Any, timeout: float = 15.0) -> BuddyExecutionTrigger:
    """Run ``trig`` until ``ready()``, then stop it as a triggerer shutting down does; return its successor."""
    task = asyncio.create_task(first_event(trig))
    deadline = time.monotonic() + timeout
    while not ready():
        assert not task.done(), f"the trigger ended before the restart point: {task.result()}"
        assert time.monotonic() < deadline, "the restart point never came"
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await trig.cleanup()
    classpath, kwargs = trig.serialize()
    assert classpath == "airflow_provider_buddy.triggers.buddy.BuddyExecutionTrigger"
    return BuddyExecutionTrigger(**json.loads(json.dumps(kwargs)))


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the emulator never got there"
        await asyncio.sleep(0.01)


def operations(emulator: BuddyEmulator, execution_id: int) -> list[dict[str, Any]]:
    """PATCH bodies Buddy processed for the execution (faults here act after processing)."""
    return [r.json for r in emulator.requests_to("PATCH", rf"/executions/{execution_id}$")]


@pytest.mark.usefixtures("buddy_conn")
async def test_restart_while_an_approval_answer_is_in_flight(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="gates", actions=GATES, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    # Buddy applies the first approval at once; its answer is held until long after the triggerer went down
    emulator.add_fault(Fault(kind="delay", delay=3.0, method="PATCH", path=rf"/executions/{run['id']}$", when="after"))
    first = trigger(run["id"], 2, on_approval="approve", cancel_on_kill=True)
    successor = await shut_down_when(first, lambda: bool(operations(emulator, run["id"])))
    await until(lambda: emulator.execution("web", 2, run["id"])["action_executions"][1]["status"] == "SUCCESSFUL")
    assert emulator.execution("web", 2, run["id"])["action_executions"][1]["approver_id"] == 1  # approved through the API
    event = await asyncio.wait_for(first_event(successor), 15)
    assert event["status"] == "success" and event["execution_status"] == "SUCCESSFUL"
    sent = operations(emulator, run["id"])
    assert [p["operation"] for p in sent] == ["APPLY", "APPLY"]  # one per gate, none twice, no CANCEL
    assert sorted(p["approve_action_id"] for p in sent) == sorted(
        a["action_execution_id"] for a in emulator.execution("web", 2, run["id"])["action_executions"][1:3]
    )


@pytest.mark.usefixtures("buddy_conn")
async def test_restart_does_not_cancel_even_with_cancel_on_kill(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=6, identifier="medium", actions=[{"id": 60, "name": "Build", "type": "BUILD", "duration": 40}]
    )
    run = emulator.start_execution("web", 6)
    first = trigger(run["id"], 6, cancel_on_kill=True, cancel_on_timeout=True, end_time=time.time() + 60)
    successor = await shut_down_when(first, lambda: len(emulator.requests_to("GET", rf"/executions/{run['id']}$")) >= 2)
    assert emulator.execution("web", 6, run["id"])["status"] == "INPROGRESS"  # a shutdown is not a kill
    event = await asyncio.wait_for(first_event(successor), 15)
    assert event["status"] == "success" and operations(emulator, run["id"]) == []


@pytest.mark.usefixtures("buddy_conn")
async def test_restart_while_a_timeout_cancel_answer_is_in_flight(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", actions=LONG)
    run = emulator.start_execution("web", 8)
    emulator.add_fault(Fault(kind="delay", delay=3.0, method="PATCH", path=rf"/executions/{run['id']}$", when="after"))
    first = trigger(run["id"], 8, cancel_on_timeout=True, end_time=time.time() + 0.3)
    successor = await shut_down_when(first, lambda: bool(operations(emulator, run["id"])))
    await until(lambda: emulator.execution("web", 8, run["id"])["status"] == "TERMINATED")
    event = await asyncio.wait_for(first_event(successor), 15)
    assert event["status"] == "timeout" and "already ended (TERMINATED)" in event["message"]
    assert [p["operation"] for p in operations(emulator, run["id"])] == ["CANCEL"]  # not cancelled twice


@pytest.mark.usefixtures("buddy_conn")
async def test_a_cancel_on_timeout_survives_a_dropped_connection(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", actions=LONG)
    run = emulator.start_execution("web", 8)
    emulator.add_fault(Fault(kind="drop", method="PATCH", path=rf"/executions/{run['id']}$"))  # the first CANCEL never reaches Buddy
    event = await asyncio.wait_for(first_event(trigger(run["id"], 8, cancel_on_timeout=True, end_time=time.time() + 0.3)), 15)
    assert event["status"] == "timeout" and "cancelled Buddy execution" in event["message"]
    assert emulator.execution("web", 8, run["id"])["status"] == "TERMINATED"
    assert [r.fault for r in emulator.requests_to("PATCH", rf"/executions/{run['id']}$")] == ["drop", None]


# ---- the worker -----------------------------------------------------------------------------------------
WORKER_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator

with DAG(dag_id="die_after_post", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=2, poll_interval=0.1, on_approval="succeed")

if __name__ == "__main__":
    from datetime import timezone

    from tests.airflow_support import run_dag

    run_dag(dag, logical_date=datetime(2026, 4, 4, tzinfo=timezone.utc))
"""


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_worker_dies_after_the_run_post_before_any_xcom(emulator: BuddyEmulator, tmp_path: Path) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="gates", actions=GATES)
    # Buddy creates the run at once; the answer is held, so the worker is still inside the POST when it dies
    emulator.add_fault(Fault(kind="delay", delay=60.0, method="POST", path=RUNS, when="after"))
    dag_file = tmp_path / "die_after_post.py"
    dag_file.write_text(WORKER_DAG)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root, "AIRFLOW_CONN_BUDDY_DEFAULT": connection_json(emulator.url, timeout=120)}
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        worker = subprocess.Popen([sys.executable, str(dag_file)], env=env, cwd=root, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while not emulator.executions("web", 2):
                assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            time.sleep(0.2)
        finally:
            os.kill(worker.pid, signal.SIGKILL)  # right after Buddy accepted the run, before the answer arrived
            worker.wait()
    (started,) = emulator.executions("web", 2)
    assert "Started Buddy execution" not in log.read_text()
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:  # the worker wrote nothing: no execution id, no link
        assert session.scalars(select(XComModel).where(XComModel.dag_id == "die_after_post")).all() == []
    emulator.clear_faults()

    spec = importlib.util.spec_from_file_location("die_after_post", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag_run = run_dag(module.dag, logical_date=datetime(2026, 4, 4, tzinfo=timezone.utc))
    assert states(dag_run) == {"run": "success"}
    assert len(emulator.requests_to("POST", RUNS)) == 1 and len(emulator.executions("web", 2)) == 1
    assert xcom(dag_run, "run") == started["id"] and xcom(dag_run, "run", "execution_id") == started["id"]
    assert xcom(dag_run, "run", "summary")["waits_for"] == "approval"


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_run_post_answered_5xx_after_buddy_started_it(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=9, identifier="instant", actions=[{"id": 90, "name": "Noop", "type": "BUILD", "duration": 0}]
    )
    emulator.add_fault(Fault(kind="status", status=502, method="POST", path=RUNS, when="after"))
    with DAG(dag_id="post_502_after", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=9, poll_interval=0.1, retries=2, retry_delay=timedelta(0))
    dag_run = run_dag(dag)
    (execution,) = emulator.executions("web", 9)  # one run: the 502 came after Buddy had started it
    assert states(dag_run) == {"run": "success"} and xcom(dag_run, "run") == execution["id"]
    assert dag_run.get_task_instance("run").try_number == 1


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_rerun_whose_post_never_arrived_does_not_take_the_old_run(emulator: BuddyEmulator, logs: LogCapture) -> None:
    """The same DAG run again (dag.test recreates it, so its try is "try 1" like the old run's): its POST is lost,
    and the search for the run it may have started must not take the old run, though it carries the same marker and try."""
    with DAG(dag_id="cleared_lost_post", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=1, poll_interval=0.1)
    when = datetime(2026, 5, 5, tzinfo=timezone.utc)
    first = run_dag(dag, logical_date=when)
    (old,) = emulator.executions("web", 1)
    assert states(first) == {"run": "success"} and old["status"] == "SUCCESSFUL" and old["comment"].endswith("(try 1)")
    emulator.add_fault(Fault(kind="drop", method="POST", path=RUNS))  # run it again: the POST never reaches Buddy
    again = run_dag(dag, logical_date=when)
    assert emulator.executions("web", 1) == [old] and [r.fault for r in emulator.requests_to("POST", RUNS)] == [None, "drop"]
    assert states(again) == {"run": "failed"} and xcom(again, "run") is None
    assert "looking for the run by its marker" in logs.text and "the run request did reach Buddy" not in logs.text


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_a_worker_timeout_cancel_survives_a_dropped_connection(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", actions=LONG)
    emulator.add_fault(Fault(kind="drop", method="PATCH", path=r"/executions/\d+$"))  # the first CANCEL never reaches Buddy
    with DAG(dag_id="worker_timeout_cancel", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id=8, poll_interval=0.1, execution_timeout=timedelta(seconds=2)
        )
    dag_run = run_dag(dag)
    (execution,) = emulator.executions("web", 8)
    assert states(dag_run) == {"run": "failed"} and execution["status"] == "TERMINATED"
    assert [r.fault for r in emulator.requests_to("PATCH", rf"/executions/{execution['id']}$")] == ["drop", None]
