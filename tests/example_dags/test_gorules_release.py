"""The GoRules example DAG, run end to end in real Airflow against the emulated BRMS, its gate answered
both ways through Airflow's human-in-the-loop REST API (the api-server app, from a background thread)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_buddy.testing import BuddyEmulator
from tests.airflow_support import hitl_waiting_states, rendered_fields, run_dag, states, xcom
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "gorules_release.py"
pytestmark = pytest.mark.usefixtures("airflow_db", "gorules_conn")


def load() -> Any:
    spec = importlib.util.spec_from_file_location(f"example_gorules_release_{time.monotonic_ns()}", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    for op in dag.tasks:  # poll fast: the emulator runs 20x faster than real time
        for attribute in ("poll_interval", "poke_interval"):
            if hasattr(op, attribute):
                setattr(op, attribute, 0.1)
    return dag


def answer_gate(client: Any, dag_id: str, choice: str, before: Callable[[], None], out: list[Any]) -> threading.Thread:
    """In the background: once the gate of the running DAG run awaits input, run ``before()``, then answer through the REST API."""

    def run() -> None:
        from airflow.models.taskinstance import TaskInstance as TI
        from airflow.utils.session import create_session
        from sqlalchemy import select

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with create_session() as session:
                run_id = session.scalar(
                    select(TI.run_id).where(TI.dag_id == dag_id, TI.task_id == "gate", TI.state.in_(hitl_waiting_states()))
                )
            if run_id is not None:
                path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/gate/-1/hitlDetails"
                detail = client.get(path)
                if detail.status_code != 200 or detail.json().get("response_received"):
                    time.sleep(0.2)  # Airflow 3.1: the request is not written yet (the gate waits deferred, not awaiting input)
                    continue
                before()
                response = client.patch(path, json={"chosen_options": [choice]})
                out.append((response.status_code, response.json()))
                return
            time.sleep(0.1)
        out.append((0, "the gate never awaited input"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_example_parses_fast_and_is_documented() -> None:
    code = (
        "import time, runpy, airflow.sdk, airflow.providers.standard.operators.hitl\n"
        f"t = time.perf_counter(); g = runpy.run_path({str(EXAMPLE)!r}); d = time.perf_counter() - t\n"
        "print(d, g['dag'].dag_id, len(g['dag'].tasks))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    seconds, dag_id, tasks = result.stdout.split()[-3:]
    assert float(seconds) < 1.0 and dag_id == "gorules_release" and tasks == "5"
    assert len(EXAMPLE.read_text().split('"""')[1]) > 500


@pytest.mark.parametrize("choice", ["Promote", "Reject"])
def test_release_gate(brms: Brms, emulator: BuddyEmulator, airflow_api: Any, choice: str) -> None:
    dag = load()
    answers: list[Any] = []

    def reviewer_in_brms() -> None:  # on Promote, the staging review is approved in the BRMS UI too
        if choice == "Promote":
            emulator.review_in_gorules(brms.project_id, emulator.gorules_runs(brms.project_id)[0]["id"], "staging", comment="checked")

    thread = answer_gate(airflow_api, dag.dag_id, choice, reviewer_in_brms, answers)
    conf = {"project_id": brms.project_id, "release_id": brms.release_id, "environment_id": brms.env["staging"]}
    dag_run = run_dag(dag, run_conf=conf)
    thread.join(5)
    [run] = emulator.gorules_runs(brms.project_id)
    assert answers and answers[0][0] == 200
    assert xcom(dag_run, "deploy_to_staging", "summary")["waiting_environments"] == ["Staging (staging)"]
    [deploy] = brms.deploys()
    assert deploy.json["comment"].startswith(f"Rules release from Airflow (gorules_release, {dag_run.run_id})")
    body = rendered_fields(dag_run, "gate")["body"]  # written by the TaskFlow task from the deploy's summary
    assert f"run {run['id']} of Pricing rules 1.4.0 waits for review on: Staging (staging)" in body
    if choice == "Promote":
        assert states(dag_run) == {
            "deploy_to_staging": "success",
            "gate_text": "success",
            "gate": "success",
            "wait_for_rollout": "success",
            "cancel_rollout": "skipped",
        }
        assert run["status"] == "completed" and xcom(dag_run, "wait_for_rollout")["status"] == "completed"
        assert brms.cancels(run["id"]) == []
    else:
        assert states(dag_run) == {
            "deploy_to_staging": "success",
            "gate_text": "success",
            "gate": "success",
            "wait_for_rollout": "skipped",
            "cancel_rollout": "success",
        }
        assert (
            run["status"] == "cancelled"
            and run["cancelledComment"] == f"Rejected at the Airflow gate of gorules_release ({dag_run.run_id})"
        )
