"""The Buddy operators in real Airflow (dag.test) against the emulator over real HTTP."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.operators.buddy import (
    BuddyApproveExecutionOperator,
    BuddyCancelExecutionOperator,
    BuddyClearPipelineCacheOperator,
    BuddyRetryExecutionOperator,
    BuddyRunPipelineOperator,
)
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import rendered_fields, run_dag, states, xcom
from tests.conftest import LogCapture
from tests.emulator_clock import clock_held_until_answered

pytestmark = pytest.mark.usefixtures("airflow_db", "buddy_conn")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
_ids = itertools.count()

SLOW = [
    {"id": 10, "name": "Compile", "type": "BUILD", "duration": 10, "log": ["compiling", "done"]},
    {"id": 11, "name": "Test", "type": "BUILD", "duration": 10, "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}]},
]
LONG = [{"id": 50, "name": "Deploy", "type": "BUILD", "duration": 100000}]
GATE = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 2},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Deploy production", "type": "BUILD", "duration": 2},
]
ASK = [{"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]}]
FAILING = [{"id": 40, "name": "Unit tests", "type": "BUILD", "duration": 10, "log": [f"pytest line {i}" for i in range(60)]}]
RUNS = r"/pipelines/\d+/executions$"


@pytest.fixture(autouse=True)
def pipelines(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="build-app", name="Build app", actions=SLOW)
    emulator.add_pipeline(project="web", pipeline_id=8, identifier="long", name="Long deploy", actions=LONG)
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="deploy", name="Deploy", actions=GATE, wait_shown_on="action")
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="notes", name="Notes", actions=ASK)
    emulator.add_pipeline(
        project="web",
        pipeline_id=4,
        identifier="tests",
        name="Tests",
        actions=FAILING,
        outcome="FAILED",
        fail_action=40,
        error_message="3 failed",
    )


def one_task_dag(make: Callable[[], Any], **dag_kwargs: Any) -> DAG:
    with DAG(dag_id=f"op_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), **dag_kwargs) as dag:
        make()
    return dag


def posts(emulator: BuddyEmulator) -> list[Any]:
    return emulator.requests_to("POST", RUNS)


def operations(emulator: BuddyEmulator, execution_id: int) -> list[str]:
    return [r.json["operation"] for r in emulator.requests_to("PATCH", rf"/executions/{execution_id}$") if r.status == 200]


# ---- BuddyRunPipelineOperator ------------------------------------------------------------------
@MODES
def test_run_waits_and_records_everything(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id="build-app",
            branch="{{ params.branch }}",
            revision="HEAD",
            comment="Release {{ params.branch }}",
            priority="high",
            clear_cache=True,
            variables={"TARGET": "{{ params.target }}"},
            actions_to_run=[10, 11],
            poll_interval=0.1,
            deferrable=deferrable,
        ),
        params={"branch": "main", "target": "staging"},
    )
    with clock_held_until_answered(emulator, r"/executions/\d+$"):
        dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"}
    (post,) = posts(emulator)
    execution = emulator.executions("web", 7)[0]
    assert post.json["branch"] == {"name": "main"} and post.json["to_revision"] == {"revision": "HEAD"}
    assert post.json["priority"] == "HIGH" and post.json["clear_cache"] is True and post.json["actions_to_run"] == [10, 11]
    assert post.json["variables"] == [{"key": "TARGET", "value": "staging"}]
    assert post.json["comment"].startswith("Release main [airflow:")
    assert xcom(dag_run, "run") == execution["id"]
    assert xcom(dag_run, "run", "execution_id") == execution["id"]
    assert xcom(dag_run, "run", "html_url") == execution["html_url"]
    assert xcom(dag_run, "run", "_link_BuddyExecutionLink") == execution["html_url"]
    assert xcom(dag_run, "run", "summary") == {
        "execution_id": execution["id"],
        "status": "SUCCESSFUL",
        "html_url": execution["html_url"],
        "outputted_variables": {"VERSION": "1.2.3"},
    }
    assert ("Waiting in the triggerer on Buddy execution" in logs.text) is deferrable
    assert rendered_fields(dag_run, "run")["branch"] == "main"


def test_run_without_waiting_returns_at_once(emulator: BuddyEmulator) -> None:
    dag = one_task_dag(lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=8, wait_for_completion=False))
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"}
    assert emulator.executions("web", 8)[0]["status"] == "INPROGRESS"


@MODES
def test_run_failure_message(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id=4, poll_interval=0.1, log_tail_lines=2, deferrable=deferrable
        )
    )
    assert states(run_dag(dag)) == {"run": "failed"}
    text = logs.text
    execution = emulator.executions("web", 4)[0]
    assert "BuddyExecutionFailedError" in text and "'Unit tests'" in text and "3 failed" in text
    assert execution["html_url"] in text and "Last 2 log lines of Unit tests" in text and "pytest line 59" in text


def test_encrypted_variables_are_sent_but_masked(emulator: BuddyEmulator, logs: LogCapture) -> None:
    secret = "pa55-SECRET-value"
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=7,
            variables=[{"key": "PASS", "value": "{{ params.password }}", "encrypted": True}, {"key": "V", "value": "1"}],
            poll_interval=0.1,
            deferrable=True,
        ),
        params={"password": secret},
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"}
    assert posts(emulator)[0].json["variables"][0] == {"key": "PASS", "value": secret, "encrypted": True}
    from airflow.sdk._shared.secrets_masker import redact

    assert secret not in str(redact(rendered_fields(dag_run, "run")))
    assert secret not in str(xcom(dag_run, "run", "summary"))
    assert secret not in "\n".join(line for line in logs.text.splitlines() if "airflow_provider_buddy" in line)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"branch": "main", "tag": "v1"}, "at most one of branch, tag, pull_request"),
        ({"priority": "urgent"}, "priority must be one of LOW, NORMAL, HIGH"),
        ({"actions_to_run": [1, -2]}, r"actions_to_run\[1\] must be a positive whole number"),
        ({"delay_until": datetime(2026, 1, 1)}, "delay_until must be a timezone-aware datetime"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"on_approval": "later"}, "on_approval must be one of"),
        ({"variables": 5}, "variables"),
        ({"pipeline_id": ""}, "pipeline_id must be a non-empty string"),
        ({"pipeline_id": 0}, "pipeline_id must be a positive whole number"),
        ({"project_name": ""}, "project_name must be a non-empty string"),
        ({"revision": "  "}, "revision: must not be empty"),
    ],
)
def test_run_parameters_checked_at_parse_time(emulator: BuddyEmulator, kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"task_id": "run", "project_name": "web", "pipeline_id": 7, **kwargs}
    with pytest.raises(ValueError, match=message):
        BuddyRunPipelineOperator(**values)
    assert emulator.requests == []


def test_templated_values_checked_after_rendering_before_sending(emulator: BuddyEmulator, logs: LogCapture) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=7, branch="{{ params.b }}", tag="{{ params.t }}"),
        params={"b": "main", "t": "v1"},
    )
    assert states(run_dag(dag)) == {"run": "failed"}
    assert "at most one of branch, tag, pull_request" in logs.text
    assert posts(emulator) == []


def test_retry_reattaches_instead_of_starting_a_second_run(emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/executions/1$"))  # fails the first try mid-wait
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id=7, poll_interval=0.1, retries=1, retry_delay=timedelta(seconds=0)
        )
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"}
    assert len(posts(emulator)) == 1
    assert dag_run.get_task_instance("run").try_number == 2
    assert xcom(dag_run, "run") == 1


def test_retry_starts_new_run_when_reattach_is_off(emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/executions/1$"))  # fails the first try mid-wait
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=7,
            poll_interval=0.1,
            retries=1,
            retry_delay=timedelta(seconds=0),
            reattach_on_retry=False,
        )
    )
    assert states(run_dag(dag)) == {"run": "success"}
    assert len(posts(emulator)) == 2


def test_lost_run_answer_is_found_not_resent(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import connection_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_BUDDY_DEFAULT", connection_json(emulator.url, timeout=1.0)
    )  # well over a normal answer on a slow machine
    emulator.add_fault(Fault(kind="delay", delay=10.0, method="POST", path=RUNS, when="after"))  # cancelled when the emulator stops
    dag = one_task_dag(lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=7, poll_interval=0.1))
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"}
    assert len(posts(emulator)) == 1 and xcom(dag_run, "run") == emulator.executions("web", 7)[0]["id"]


WORKER_DAG = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator

with DAG(dag_id="crash_dag", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
    BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=8, poll_interval=0.2)

if __name__ == "__main__":
    from datetime import timezone

    from tests.airflow_support import run_dag

    run_dag(dag, logical_date=datetime(2026, 2, 2, tzinfo=timezone.utc))
"""


def test_worker_crash_mid_wait_reattaches(emulator: BuddyEmulator, tmp_path: Any) -> None:
    import subprocess
    import sys

    dag_file = tmp_path / "crash_dag.py"
    dag_file.write_text(WORKER_DAG)
    root = str(Path(__file__).resolve().parents[2])
    output = (tmp_path / "worker.log").open("w")
    env = {**os.environ, "PYTHONPATH": root}
    worker = subprocess.Popen([sys.executable, str(dag_file)], env=env, cwd=root, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300  # a cold Airflow process on a slow machine takes a while to get there
        while not emulator.requests_to("GET", r"/pipelines/8/executions/\d+$") and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(posts(emulator)) == 1, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.kill()  # the worker dies mid-wait, without any chance to clean up
        worker.wait()
    execution_id = emulator.executions("web", 8)[0]["id"]
    assert emulator.execution("web", 8, execution_id)["status"] == "INPROGRESS"

    import importlib.util

    spec = importlib.util.spec_from_file_location("crash_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    dag.tasks[0].wait_for_completion = False  # the retry only has to re-attach; the run takes hours
    dag_run = run_dag(dag, logical_date=datetime(2026, 2, 2, tzinfo=timezone.utc))
    assert states(dag_run) == {"run": "success"}
    assert len(posts(emulator)) == 1 and xcom(dag_run, "run") == execution_id


# ---- kill and timeout ----------------------------------------------------------------------------
WAIT_TIMEOUT = timedelta(seconds=8)
"""Runs out once the task waits on its run, even on a slow machine (reaching that point took up to ~1.3 s under heavy CPU load)."""


def _sigterm_when_running(emulator: BuddyEmulator) -> threading.Thread:
    def fire() -> None:
        deadline = time.monotonic() + 300  # generous: the first DAG run of a process takes a while on a slow machine
        while time.monotonic() < deadline:
            if len(emulator.requests_to("GET", r"/pipelines/8/executions/\d+$")) >= 2:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def test_kill_in_worker_cancels_the_run(emulator: BuddyEmulator, logs: LogCapture) -> None:
    dag = one_task_dag(lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=8, poll_interval=0.1))
    _sigterm_when_running(emulator)
    dag_run = run_dag(dag)
    execution = emulator.executions("web", 8)[0]
    assert operations(emulator, execution["id"]) == ["CANCEL"] and execution["status"] == "TERMINATED"
    assert states(dag_run) == {"run": "failed"}
    assert "Task killed or timed out: cancelled Buddy execution" in logs.text


@MODES
def test_execution_timeout_cancels_the_run(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=8,
            poll_interval=0.1,
            deferrable=deferrable,
            execution_timeout=WAIT_TIMEOUT,
        )
    )
    dag_run = run_dag(dag)
    execution = emulator.executions("web", 8)[0]
    assert states(dag_run) == {"run": "failed"}
    assert operations(emulator, execution["id"]) == ["CANCEL"] and execution["status"] == "TERMINATED"
    assert ("BuddyWaitTimeoutError" in logs.text) is deferrable
    assert ("AirflowTaskTimeout" in logs.text) is not deferrable


@MODES
def test_timeout_leaves_run_going_when_asked(emulator: BuddyEmulator, deferrable: bool) -> None:
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=8,
            poll_interval=0.1,
            deferrable=deferrable,
            execution_timeout=WAIT_TIMEOUT,
            cancel_on_kill=False,
        )
    )
    assert states(run_dag(dag)) == {"run": "failed"}
    execution = emulator.executions("web", 8)[0]
    assert operations(emulator, execution["id"]) == [] and execution["status"] == "INPROGRESS"


# ---- gates from the run operator -----------------------------------------------------------------
@MODES
def test_run_on_approval_succeed_then_approve_operator(emulator: BuddyEmulator, deferrable: bool) -> None:
    with DAG(dag_id=f"op_gate_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        run = BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id="deploy", poll_interval=0.1, on_approval="succeed", deferrable=deferrable
        )
        approve = BuddyApproveExecutionOperator(
            task_id="approve", project_name="web", pipeline_id=2, execution_id="{{ ti.xcom_pull(task_ids='run') }}"
        )
        run >> approve
    dag_run = run_dag(dag)
    execution = emulator.executions("web", 2)[0]
    assert states(dag_run) == {"run": "success", "approve": "success"}
    assert xcom(dag_run, "run", "summary")["waits_for"] == "approval"
    patch = emulator.requests_to("PATCH", rf"/executions/{execution['id']}$")[0].json
    waiting_id = xcom(dag_run, "run", "summary")["waiting_action_execution_id"]
    assert patch == {"operation": "APPLY", "approve_action_id": waiting_id}
    assert xcom(dag_run, "approve", "_link_BuddyExecutionLink") == execution["html_url"]


def test_approve_operator_sends_variables_and_refuses_non_waiting(emulator: BuddyEmulator, logs: LogCapture) -> None:
    asked = emulator.start_execution("web", 3)
    done = emulator.start_execution("web", 7)
    emulator.advance(30)  # `done` has finished; `asked` still waits for its variables
    with DAG(dag_id=f"op_approve_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyApproveExecutionOperator(
            task_id="answer", project_name="web", pipeline_id=3, execution_id=asked["id"], variables={"NOTES": "ok"}
        )
        BuddyApproveExecutionOperator(task_id="not_waiting", project_name="web", pipeline_id=7, execution_id=done["id"])
    dag_run = run_dag(dag)
    assert states(dag_run) == {"answer": "success", "not_waiting": "failed"}
    assert emulator.requests_to("PATCH", rf"/pipelines/3/executions/{asked['id']}$")[0].json["variables"] == [
        {"key": "NOTES", "value": "ok"}
    ]
    assert "is not waiting for approval: its status is SUCCESSFUL" in logs.text
    assert emulator.requests_to("PATCH", r"/pipelines/7/") == []


# ---- cancel / retry / clear cache ---------------------------------------------------------------
def test_cancel_operator(emulator: BuddyEmulator, logs: LogCapture) -> None:
    going = emulator.start_execution("web", 8)
    finished = emulator.start_execution("web", 7)
    emulator.advance(30)  # `finished` has finished; `going` is still going
    with DAG(dag_id=f"op_cancel_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyCancelExecutionOperator(task_id="cancel", project_name="web", pipeline_id=8, execution_id=going["id"])
        BuddyCancelExecutionOperator(task_id="finished_ok", project_name="web", pipeline_id=7, execution_id=finished["id"])
        BuddyCancelExecutionOperator(
            task_id="finished_strict", project_name="web", pipeline_id=7, execution_id=finished["id"], fail_if_finished=True
        )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"cancel": "success", "finished_ok": "success", "finished_strict": "failed"}
    assert operations(emulator, going["id"]) == ["CANCEL"] and emulator.execution("web", 8, going["id"])["status"] == "TERMINATED"
    assert emulator.requests_to("PATCH", r"/pipelines/7/") == []
    assert "had already ended (SUCCESSFUL); nothing to cancel" in logs.text


@MODES
def test_retry_operator_waits_for_the_retried_run(emulator: BuddyEmulator, deferrable: bool) -> None:
    failed = emulator.start_execution("web", 4)
    with DAG(dag_id=f"op_retry_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

        @task(task_id="wait_failed")
        def wait_failed() -> int:
            for _ in range(200):
                if emulator.execution("web", 4, failed["id"])["status"] == "FAILED":
                    return int(failed["id"])
                time.sleep(0.05)
            raise AssertionError("never failed")

        wait_failed() >> BuddyRetryExecutionOperator(
            task_id="retry",
            project_name="web",
            pipeline_id="tests",
            execution_id="{{ ti.xcom_pull(task_ids='wait_failed') }}",
            wait_for_completion=True,
            poll_interval=0.1,
            deferrable=deferrable,
        )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"wait_failed": "success", "retry": "success"}
    assert operations(emulator, failed["id"]) == ["RETRY"]
    assert xcom(dag_run, "retry", "summary")["status"] == "SUCCESSFUL"
    assert xcom(dag_run, "retry", "_link_BuddyExecutionLink") == failed["html_url"]


def test_retry_operator_refuses_a_running_execution(emulator: BuddyEmulator, logs: LogCapture) -> None:
    going = emulator.start_execution("web", 8)
    dag = one_task_dag(lambda: BuddyRetryExecutionOperator(task_id="retry", project_name="web", pipeline_id=8, execution_id=going["id"]))
    assert states(run_dag(dag)) == {"retry": "failed"}
    assert "cannot be retried: its status is INPROGRESS" in logs.text
    assert operations(emulator, going["id"]) == []


def test_clear_cache_operator(emulator: BuddyEmulator) -> None:
    dag = one_task_dag(lambda: BuddyClearPipelineCacheOperator(task_id="clear", project_name="web", pipeline_id="build-app"))
    dag_run = run_dag(dag)
    assert states(dag_run) == {"clear": "success"}
    assert xcom(dag_run, "clear") == {"pipeline_id": 7, "name": "Build app"}
    assert emulator.cache_clears("web", 7) == 1


def test_unknown_pipeline_name_fails_before_any_run(emulator: BuddyEmulator, logs: LogCapture) -> None:
    dag = one_task_dag(lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id="no-such-pipeline"))
    assert states(run_dag(dag)) == {"run": "failed"}
    assert "pipeline_id 'no-such-pipeline': no pipeline in project 'web'" in logs.text
    assert posts(emulator) == []


@MODES
def test_buddy_not_answering_well_does_not_fail_a_started_run(emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    """Eight 503s in a row on the execution outlast the hook's retries twice over: the try that started the run waits on."""
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=r"/executions/\d+$", times=8))
    dag = one_task_dag(
        lambda: BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=7, poll_interval=0.1, deferrable=deferrable)
    )
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success"} and dag_run.get_task_instance("run").try_number == 1
    assert len(posts(emulator)) == 1 and xcom(dag_run, "run", "summary")["status"] == "SUCCESSFUL" and emulator.faults == []
