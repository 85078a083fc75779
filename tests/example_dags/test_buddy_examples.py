"""Every Buddy example DAG, run end to end in real Airflow against the emulator (demo scenario),
its gate answered both ways through Airflow's human-in-the-loop REST API."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import XComArg

from airflow_provider_buddy.testing import DEMO_SCENARIO, BuddyEmulator
from airflow_provider_buddy.utils.arguments import pulls_xcom
from tests.airflow_support import HitlResponder, run_dag, states, xcom
from tests.conftest import TOKEN, WORKSPACE, LogCapture, connection_json

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[BuddyEmulator]:
    with BuddyEmulator(scenario=DEMO_SCENARIO, workspace=WORKSPACE, token=TOKEN, speed=20.0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_BUDDY_DEFAULT", connection_json(emu.url))
        yield emu


def load(name: str, **speedups: Any) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}_{time.monotonic_ns()}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    for op in dag.tasks:  # poll fast: the emulator runs 20x faster than real time
        for attribute in ("poll_interval", "poke_interval"):
            if hasattr(op, attribute):
                setattr(op, attribute, 0.1)
        for attribute, value in speedups.get(op.task_id, {}).items():
            setattr(op, attribute, value)
    return dag


def patches(emu: BuddyEmulator, pipeline_id: int) -> list[dict[str, Any]]:
    return [r.json for r in emu.requests_to("PATCH", rf"/pipelines/{pipeline_id}/executions/\d+$") if r.status == 200]


@pytest.mark.parametrize("name", ["buddy_release", "buddy_pass_arguments", "buddy_cancel_on_timeout", "buddy_wait_for_execution"])
def test_examples_parse_fast_and_are_documented(name: str) -> None:
    import airflow_provider_buddy.operators.approval
    import airflow_provider_buddy.operators.buddy
    import airflow_provider_buddy.sensors.buddy  # noqa: F401  (the provider's own import cost is not the example's)

    started = time.perf_counter()
    dag = load(name)
    assert time.perf_counter() - started < 1.0
    assert dag.dag_id == name and dag.doc_md is None and len((EXAMPLES / f"{name}.py").read_text().split('"""')[1]) > 200
    for op in dag.tasks:  # an id from upstream comes from .output (Airflow sets the dependency): no template reads XCom
        for value in (getattr(op, field) for field in op.template_fields):
            assert not (isinstance(value, str) and pulls_xcom(value)), (op.task_id, value)
        if name == "buddy_wait_for_execution":  # a run started elsewhere: its id is the DAG run's parameter
            assert getattr(op, "execution_id", "{{ params.execution_id }}") == "{{ params.execution_id }}"
        elif hasattr(op, "execution_id"):
            assert isinstance(op.execution_id, XComArg) and op.execution_id.operator.task_id in op.upstream_task_ids


def test_release_approved(demo: BuddyEmulator, airflow_api: Any) -> None:
    dag = load("buddy_release")
    responder = HitlResponder(airflow_api)
    responder.answer("buddy_release", "approve", "Approve")
    dag_run = run_dag(dag, run_conf={"branch": "release/1.4", "comment": "Release 1.4"})
    assert states(dag_run) == {
        "clear_cache": "success",
        "build": "success",
        "deploy_vars": "success",
        "staging": "success",
        "approve": "success",
        "production": "success",
    }
    assert demo.cache_clears("web", 1) == 1
    (build_post,) = demo.requests_to("POST", r"/pipelines/1/executions$")
    assert build_post.json["branch"] == {"name": "release/1.4"} and build_post.json["comment"].startswith("Release 1.4 (build)")
    (deploy_post,) = demo.requests_to("POST", r"/pipelines/2/executions$")
    assert deploy_post.json["variables"] == [{"key": "VERSION", "value": "1.4.0"}]  # what the build produced, through TaskFlow
    waiting_id = xcom(dag_run, "staging", "summary")["waiting_action_execution_id"]
    assert patches(demo, 2) == [{"operation": "APPLY", "approve_action_id": waiting_id}]
    assert demo.executions("web", 2)[0]["status"] == "SUCCESSFUL"
    assert xcom(dag_run, "approve", "buddy_decision")["decision"] == "approved"


def test_release_rejected(demo: BuddyEmulator, airflow_api: Any) -> None:
    dag = load("buddy_release")
    responder = HitlResponder(airflow_api)
    responder.answer("buddy_release", "approve", "Reject")
    dag_run = run_dag(dag)
    assert states(dag_run)["approve"] == "success" and states(dag_run)["production"] == "skipped"
    assert patches(demo, 2) == [{"operation": "CANCEL"}]
    assert demo.executions("web", 2)[0]["status"] == "TERMINATED"


@pytest.mark.parametrize("choice", ["Approve", "Reject"])
def test_pass_arguments(demo: BuddyEmulator, airflow_api: Any, choice: str) -> None:
    dag = load("buddy_pass_arguments")
    responder = HitlResponder(airflow_api)
    answers = {"RELEASE_NOTES": "Faster builds", "VERSION": "1.4.0"}
    responder.answer("buddy_pass_arguments", "answer", choice, params_input=answers if choice == "Approve" else None)
    dag_run = run_dag(dag)
    sent = patches(demo, 3)
    if choice == "Approve":
        assert states(dag_run) == {"start": "success", "answer": "success", "publish": "success"}
        assert len(sent) == 1 and sent[0]["operation"] == "APPLY_VARIABLES"
        assert {v["key"]: v["value"] for v in sent[0]["variables"]} == answers
    else:
        assert states(dag_run) == {"start": "success", "answer": "success", "publish": "skipped"}
        assert sent == [{"operation": "CANCEL"}]


def test_cancel_on_timeout(demo: BuddyEmulator, logs: LogCapture) -> None:
    # long enough that even a slow machine has started the run and waits on it when it runs out
    dag = load("buddy_cancel_on_timeout", deploy={"execution_timeout": timedelta(seconds=8)})
    dag_run = run_dag(dag)
    assert states(dag_run) == {"deploy": "failed"}
    execution = demo.executions("web", 4)[0]
    assert patches(demo, 4) == [{"operation": "CANCEL"}] and execution["status"] == "TERMINATED"
    assert "BuddyWaitTimeoutError" in logs.text and f"cancelled Buddy execution {execution['id']}" in logs.text


def test_wait_for_execution_waits_for_a_run_started_in_buddy(demo: BuddyEmulator, logs: LogCapture) -> None:
    """The sensor waits for a run someone started in Buddy and hands its summary on (under dag.test the sensor runs on
    the "worker" and defers: dag.test ignores start_from_trigger; the real-deployment suite shows it start there)."""
    execution = demo.start_execution("web", 1)
    dag = load("buddy_wait_for_execution")
    assert dag.get_task("wait").start_from_trigger is True
    dag_run = run_dag(dag, run_conf={"pipeline": "build", "execution_id": execution["id"]})
    assert states(dag_run) == {"wait": "success", "report": "success"}
    assert xcom(dag_run, "wait")["execution_id"] == execution["id"] and xcom(dag_run, "wait")["status"] == "SUCCESSFUL"
    assert f"Buddy execution {execution['id']} ended SUCCESSFUL" in logs.text
