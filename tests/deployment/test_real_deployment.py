"""The example DAGs in a real Airflow deployment (separate api-server, scheduler, dag-processor, triggerer; LocalExecutor;
PostgreSQL), driven over the REST API as a person or a script would, judged by the Buddy emulator's own records.

One deployment serves every scenario (see conftest.py); the DAG runs of a scenario run concurrently. The summary table
(DAG runs, tries failed by Airflow's defer race, orphaned Buddy runs, duplicates, approvals sent twice, ...) is printed
at the end of the session and written to ``tmp/test-output/e2e/results.json``.

Airflow's defer race (apache/airflow 66374, 67287, 71580, 72716; PR 71579; open in 3.3.2): a task that resumes soon
after it deferred -- a HITL request answered within about a second, a trigger that fires a few seconds after the
deferral -- can be failed by the scheduler because the worker's exit of the deferring try is reported after the task
was queued again ("... finished with state success, but the task instance's state attribute is queued"). Today's
product code does nothing about it, so the scenarios that hit it are marked xfail (strict=False): they run in full,
their numbers go into the table, and they turn into passes once the product survives the race.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.deployment.conftest import E2E, GORULES_TOKEN
from tests.deployment.harness import REPO, Answer, EmulatorProcess, wait_until
from tests.deployment.scenarios import PASS_ARGUMENTS, PATCH_PATH, RunPlan, Scenario, cancels_sent

HUMAN = (2.0, 5.0)  # a person reads the request, then clicks
FAST = (0.0, 0.2)  # a script, or a person who had the page open: the answer is in within 0.5 s of the request
RACE = (
    "Airflow's defer race (apache/airflow#67287, #71580, #72716; open in 3.3.2): a task that resumes within seconds of "
    "deferring -- a gate answered fast, or a run operator whose Buddy step ends within a poll or two -- is failed by the "
    "scheduler ('finished with state success, but the task instance's state attribute is queued'); today's product code "
    "does not survive it (lead's fix pending)"
)


def _tag() -> str:
    return time.strftime("%H%M%S")


def _release(run_id: str, choice: str, delay: tuple[float, float]) -> RunPlan:
    conf = {"branch": "main", "comment": f"e2e {run_id}"}
    return RunPlan("buddy_release", run_id, conf, Answer(choice, delay=delay), expect="success")


def _pass_arguments(run_id: str, choice: str, delay: tuple[float, float]) -> RunPlan:
    values = dict(PASS_ARGUMENTS) if choice == "Approve" else {}
    return RunPlan("buddy_pass_arguments", run_id, {}, Answer(choice, values, delay=delay), expect="success")


def _finish(e2e: E2E, scenario: Scenario, timeout: float) -> Any:
    try:
        scenario.wait(timeout)
    finally:
        result = scenario.collect()
        e2e.record(result)
    return result


def _assert_clean(result: Any) -> None:
    problems = result.problems()
    details = "\n".join(result.notes + result.race_lines[:10])
    assert not problems, f"{result.name}: {problems}\n{details}\nDAG runs: {json.dumps(result.task_states, indent=1)}"


# ---- every example DAG to its end, gates answered by a person ----------------------------------------------------


@pytest.mark.xfail(strict=False, raises=AssertionError, reason=RACE)
def test_examples_with_human_answers(e2e: E2E) -> None:
    """buddy_release and buddy_pass_arguments, each gate answered Approve and Reject after 2-5 s; buddy_cancel_on_timeout."""
    tag = _tag()
    scenario = Scenario("examples, human answers", e2e.deployment, e2e.emulator, e2e.answerer)
    scenario.start(
        [
            _release(f"human_release_approve_{tag}", "Approve", HUMAN),
            _release(f"human_release_reject_{tag}", "Reject", HUMAN),
            _pass_arguments(f"human_pass_approve_{tag}", "Approve", HUMAN),
            _pass_arguments(f"human_pass_reject_{tag}", "Reject", HUMAN),
            RunPlan("buddy_cancel_on_timeout", f"human_timeout_{tag}", expect="failed"),
        ]
    )
    result = _finish(e2e, scenario, timeout=420)
    _assert_clean(result)
    states = result.task_states
    assert states[f"human_release_approve_{tag}"] == dict.fromkeys(("clear_cache", "build", "staging", "approve", "production"), "success")
    assert states[f"human_release_reject_{tag}"]["production"] == "skipped"
    assert states[f"human_pass_approve_{tag}"]["publish"] == "success"
    assert states[f"human_pass_reject_{tag}"]["publish"] == "skipped"
    assert states[f"human_timeout_{tag}"] == {"deploy": "failed"}
    # the form's values reached Buddy as APPLY_VARIABLES
    sent = [
        r["json"] for r in e2e.emulator.requests()
        if r["method"] == "PATCH" and PATCH_PATH.search(r["path"]) and (r.get("json") or {}).get("operation") == "APPLY_VARIABLES"
    ]  # fmt: skip
    assert any({v["key"]: v["value"] for v in body.get("variables", [])} == PASS_ARGUMENTS for body in sent), sent


@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="the emulator has no GoRules scenario keys yet (scenario.py rejects 'gorules'), so gorules_release cannot run against a standalone emulator",
)
def test_gorules_release(e2e: E2E) -> None:
    """gorules_release against a standalone emulator serving GoRules: deploy to staging, Promote at the gate, rollout."""
    scenario_file = e2e.out / "gorules-scenario.json"
    project, release, environment = "6f1c1c8e-0000-4000-8000-000000000001", "6f1c1c8e-0000-4000-8000-000000000002", "6f1c1c8e-0000-4000-8000-000000000003"
    scenario_file.write_text(
        json.dumps(
            {
                "token": GORULES_TOKEN,
                "gorules": {
                    "projects": [
                        {
                            "id": project,
                            "name": "Pricing rules",
                            "environments": [{"id": environment, "name": "staging", "review": False}],
                            "releases": [{"id": release, "name": "Pricing", "version": "1.2.0"}],
                        }
                    ]
                },
            }
        )
    )
    gorules = EmulatorProcess(scenario_file, e2e.out / "logs", book=e2e.book, port=e2e.gorules_port, name="gorules-emulator")
    try:
        try:
            gorules.start(timeout=20)
        except RuntimeError as exc:
            raise AssertionError(f"the standalone emulator refuses a GoRules scenario: {exc}") from None
        run_id = f"gorules_{_tag()}"
        scenario = Scenario("gorules_release", e2e.deployment, e2e.emulator, e2e.answerer)
        scenario.start([RunPlan("gorules_release", run_id, {"project_id": project, "release_id": release, "environment_id": environment}, Answer("Promote", delay=HUMAN))])
        scenario.wait(300)
        assert e2e.deployment.rest.task_states("gorules_release", run_id) == {
            "deploy_to_staging": "success", "gate": "success", "wait_for_rollout": "success", "cancel_rollout": "skipped"
        }  # fmt: skip
    finally:
        gorules.stop()


# ---- gates answered fast, many times ----------------------------------------------------------------------------


@pytest.mark.xfail(strict=False, raises=AssertionError, reason=RACE)
def test_gates_answered_fast(e2e: E2E) -> None:
    """Ten runs of each gated example, concurrently, each gate answered within 0.5 s of its request (Approve and Reject)."""
    tag = _tag()
    scenario = Scenario("gates answered fast (x10 each)", e2e.deployment, e2e.emulator, e2e.answerer)
    plans = []
    for i in range(10):
        choice = "Approve" if i % 2 == 0 else "Reject"
        plans.append(_release(f"fast_release_{choice.lower()}_{tag}_{i}", choice, FAST))
        plans.append(_pass_arguments(f"fast_pass_{choice.lower()}_{tag}_{i}", choice, FAST))
    scenario.start(plans)
    result = _finish(e2e, scenario, timeout=480)
    records = e2e.answerer.records_for(p.run_id for p in plans)
    seen = [r.seen_after for r in records]
    result.notes.append(f"{len(records)} requests seen, {sum(s <= 0.5 for s in seen)} within 0.5 s of their creation (max {max(seen, default=0):.2f} s)")
    _assert_clean(result)


# ---- restarts -------------------------------------------------------------------------------------------------


@pytest.mark.xfail(strict=False, raises=AssertionError, reason=RACE)
def test_triggerer_restart_while_deferred(e2e: E2E) -> None:
    """SIGTERM the triggerer while every run's build waits deferred, start a new one: no run lost, cancelled or doubled."""
    tag = _tag()
    emulator, deployment, api = e2e.emulator, e2e.deployment, e2e.deployment.rest
    scenario = Scenario("triggerer restart (SIGTERM)", deployment, emulator, e2e.answerer)
    speed = emulator.speed
    emulator.set_speed(0)  # Buddy's runs hold still until the new triggerer is up
    try:
        plans = scenario.start([_release(f"trigger_restart_{tag}_{i}", "Approve", HUMAN) for i in range(3)])
        wait_until(lambda: all(api.task_states(p.dag_id, p.run_id).get("build") == "deferred" for p in plans), "every build deferred", 180, interval=1.0, alive=deployment.check_alive)
        since = time.time()
        took = deployment.restart_component("triggerer")
        deployment.wait_healthy(120, names=("triggerer",))
        result = scenario.result
        result.notes.append(f"old triggerer took {took:.1f} s to stop; new one healthy {time.time() - since:.1f} s after the SIGTERM")
    finally:
        emulator.set_speed(speed)
    result = _finish(e2e, scenario, timeout=360)
    cancelled = cancels_sent(emulator, since)
    build_cancels = {path: n for path, n in cancelled.items() if "/pipelines/1/" in path}
    assert not build_cancels, f"the triggerer's shutdown cancelled Buddy runs: {build_cancels}"
    _assert_clean(result)


@pytest.mark.xfail(strict=False, raises=AssertionError, reason=RACE)
def test_scheduler_restart_mid_run(e2e: E2E) -> None:
    """SIGTERM the scheduler while runs are between build and the gate, start a new one: every run still ends right."""
    tag = _tag()
    deployment, api = e2e.deployment, e2e.deployment.rest
    scenario = Scenario("scheduler restart (SIGTERM)", deployment, e2e.emulator, e2e.answerer)
    plans = scenario.start([_release(f"scheduler_restart_{tag}_{i}", "Approve", HUMAN) for i in range(3)])

    def mid_run() -> bool:
        states = [api.task_states(p.dag_id, p.run_id) for p in plans]
        return any(s.get("staging") not in (None, "None") for s in states)

    wait_until(mid_run, "a run at its staging step", 240, interval=1.0, alive=deployment.check_alive)
    since = time.time()
    took = deployment.restart_component("scheduler")
    deployment.wait_healthy(120, names=("scheduler",))
    scenario.result.notes.append(f"old scheduler took {took:.1f} s to stop; new one healthy {time.time() - since:.1f} s after the SIGTERM")
    result = _finish(e2e, scenario, timeout=360)
    _assert_clean(result)


def test_component_control_kills_its_whole_family(e2e: E2E) -> None:
    """The harness itself: a SIGKILLed dag-processor leaves no process of its session behind, and starts again."""
    deployment = e2e.deployment
    processor = deployment.components["dag-processor"]
    sid = processor.pid
    deployment.kill_component("dag-processor")
    left = [pid for pid in e2e.book.alive() if _session(pid) == sid]
    assert not left, f"processes of the killed dag-processor still alive: {left}"
    deployment.start_component("dag-processor")
    deployment.wait_healthy(120, names=("dag_processor",))
    assert processor.running and processor.starts == 2


def _session(pid: int) -> int | None:
    import os

    try:
        return os.getsid(pid)
    except OSError:
        return None


def test_scenario_file_is_the_packaged_demo() -> None:
    """The deployment's emulator plays the scenario the examples document (demo.json), so the pipeline ids hold."""
    data = json.loads((REPO / "airflow_provider_buddy" / "testing" / "scenarios" / "demo.json").read_text())
    ids = {p["identifier"]: p["id"] for p in data["projects"][0]["pipelines"]}
    assert ids == {"build": 1, "deploy-staging": 2, "release-notes": 3, "long-deploy": 4}


def test_connection_test_button_reaches_the_emulator(e2e: E2E) -> None:
    """The UI's Test button (``POST /api/v2/connections/test``, ``[core] test_connection = Enabled``) runs the buddy
    hook's test_connection in the api-server: it reads the emulator's workspace, and names what to fix on a bad token."""
    api, emulator = e2e.deployment.rest, e2e.emulator
    body = {"connection_id": "e2e_buddy_test", "conn_type": "buddy", "host": emulator.url, "login": emulator.workspace, "password": emulator.token}
    good = api.request("POST", "/api/v2/connections/test", json=body)
    assert good.status_code == 200 and good.json()["status"] is True, good.text
    bad = api.request("POST", "/api/v2/connections/test", json={**body, "password": "not-the-token"})
    assert bad.status_code == 200 and bad.json()["status"] is False, bad.text
    assert "not-the-token" not in bad.text
