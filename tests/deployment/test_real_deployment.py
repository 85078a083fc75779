"""The example DAGs in a real Airflow deployment (separate api-server, scheduler, dag-processor, triggerer; LocalExecutor;
PostgreSQL), driven over the REST API as a person or a script would, judged by the Buddy emulator's own records.

One deployment serves every scenario (see conftest.py); the DAG runs of a scenario run concurrently. The summary table
(DAG runs, tries failed by Airflow's defer race, orphaned Buddy runs, duplicates, approvals sent twice, ...) is printed
at the end of the session and written to ``tmp/test-output/e2e/results.json``.

Airflow's defer race (apache/airflow 66374, 67287, 71580, 72716; PR 71579; open in 3.3.2): a task that resumes soon
after it deferred -- a HITL request answered within about a second, a trigger that fires a few seconds after the
deferral -- can be failed by the scheduler because the worker's exit of the deferring try is reported after the task
was queued again ("... finished with state success, but the task instance's state attribute is queued"). The
provider is built to survive it (waits that end well end in the triggerer, worker resumes are held, the gate applies
a recorded answer on retry, a failed DAG run cancels what it left going): the scenarios count the tries Airflow
failed, and fail on what would hurt a user -- a run left going, a second run, an answer lost or applied twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from tests.deployment.conftest import E2E
from tests.deployment.harness import REPO, Answer, wait_until
from tests.deployment.scenarios import PASS_ARGUMENTS, PATCH_PATH, RunPlan, Scenario, cancels_sent

HUMAN = (2.0, 5.0)  # a person reads the request, then clicks
FAST = (0.0, 0.2)  # a script, or a person who had the page open: the answer is in within 0.5 s of the request


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
    assert states[f"human_release_approve_{tag}"] == dict.fromkeys(
        ("clear_cache", "build", "deploy_vars", "staging", "approve", "production"), "success"
    )
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


GORULES = {  # the packaged demo scenario's GoRules project (demo.json), as the example DAG's docstring names them
    "project_id": "11111111-1111-4111-8111-111111111111",
    "release_id": "33333333-3333-4333-8333-333333333301",
    "environment_id": "22222222-2222-4222-8222-222222222202",
}


def test_gorules_release(e2e: E2E) -> None:
    """gorules_release against the standalone emulator: deploy to staging (it waits for the BRMS review), then Promote at
    the Airflow gate -- a reviewer approves in the BRMS and the rollout completes -- or Reject, which cancels the run."""
    tag = _tag()
    emulator, api = e2e.emulator, e2e.deployment.rest
    scenario = Scenario("gorules_release", e2e.deployment, emulator, e2e.answerer)
    promote, reject = f"gorules_promote_{tag}", f"gorules_reject_{tag}"
    before = {r["id"] for r in emulator.gorules_runs(GORULES["project_id"])}
    scenario.start(
        [
            RunPlan("gorules_release", promote, dict(GORULES), Answer("Promote", delay=HUMAN)),
            RunPlan("gorules_release", reject, dict(GORULES), Answer("Reject", delay=HUMAN)),
        ]
    )

    def reviewer() -> bool:  # approves the staging review of the promoted run, once the gate said Promote
        if api.task_states("gorules_release", promote).get("wait_for_rollout") not in ("running", "deferred", "success"):
            return False
        runs = [r for r in emulator.gorules_runs(GORULES["project_id"]) if r["id"] not in before and promote in str(r)]
        waiting = [r for r in runs if r["status"] == "waiting"]
        for run in waiting:
            emulator.review(GORULES["project_id"], run["id"], "staging", approve=True)
        return bool(runs) and not waiting

    wait_until(reviewer, "the promoted run reviewed in the BRMS", 300, interval=1.0, alive=e2e.deployment.check_alive)
    result = _finish(e2e, scenario, timeout=300)
    assert api.task_states("gorules_release", promote) == {
        "deploy_to_staging": "success", "gate_text": "success", "gate": "success", "wait_for_rollout": "success",
        "cancel_rollout": "skipped",
    }  # fmt: skip
    assert api.task_states("gorules_release", reject) == {
        "deploy_to_staging": "success", "gate_text": "success", "gate": "success", "wait_for_rollout": "skipped",
        "cancel_rollout": "success",
    }  # fmt: skip
    runs = {r["id"]: r for r in emulator.gorules_runs(GORULES["project_id"]) if r["id"] not in before}
    by_dag_run = {run_id: [r for r in runs.values() if run_id in str(r)] for run_id in (promote, reject)}
    assert [len(found) for found in by_dag_run.values()] == [1, 1], f"one deploy per DAG run: {by_dag_run}"
    assert by_dag_run[promote][0]["status"] == "completed" and by_dag_run[reject][0]["status"] == "cancelled"
    links = api.extra_links("gorules_release", promote, "deploy_to_staging")
    assert links["extra_links"].get("GoRules run") == emulator.url, links
    assert not result.problems(), result.problems()


# ---- gates answered fast, many times ----------------------------------------------------------------------------


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
    result.notes.append(
        f"{len(records)} requests seen, {sum(s <= 0.5 for s in seen)} within 0.5 s of their creation (max {max(seen, default=0):.2f} s)"
    )
    _assert_clean(result)


# ---- restarts -------------------------------------------------------------------------------------------------


def test_triggerer_restart_while_deferred(e2e: E2E) -> None:
    """SIGTERM the triggerer while every run's build waits deferred, start a new one: no run lost, cancelled or doubled."""
    tag = _tag()
    emulator, deployment, api = e2e.emulator, e2e.deployment, e2e.deployment.rest
    scenario = Scenario("triggerer restart (SIGTERM)", deployment, emulator, e2e.answerer)
    speed = emulator.speed
    emulator.set_speed(0)  # Buddy's runs hold still until the new triggerer is up
    try:
        plans = scenario.start([_release(f"trigger_restart_{tag}_{i}", "Approve", HUMAN) for i in range(3)])
        wait_until(
            lambda: all(api.task_states(p.dag_id, p.run_id).get("build") == "deferred" for p in plans),
            "every build deferred",
            180,
            interval=1.0,
            alive=deployment.check_alive,
        )
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


def test_a_sensor_starts_and_ends_in_the_triggerer(e2e: E2E) -> None:
    """buddy_wait_for_execution waits for a run someone started in Buddy: its deferrable sensor's arguments need no
    XCom, so Airflow starts it straight in the triggerer, and the run's success ends it there: no worker ever runs it."""
    emulator, api = e2e.emulator, e2e.deployment.rest
    execution = emulator.start_run("web", 1)
    run_id = f"wait_for_{_tag()}"
    api.trigger("buddy_wait_for_execution", run_id, {"pipeline": "build", "execution_id": execution["id"]})
    wait_until(
        lambda: api.dag_run("buddy_wait_for_execution", run_id)["state"] in ("success", "failed"),
        "buddy_wait_for_execution ended", 240, interval=1.0, alive=e2e.deployment.check_alive,
    )  # fmt: skip
    assert api.task_states("buddy_wait_for_execution", run_id) == {"wait": "success", "report": "success"}
    [sensed] = [ti for ti in api.task_instances("buddy_wait_for_execution", run_id) if ti["task_id"] == "wait"]
    assert not sensed.get("hostname") and not sensed.get("pid"), f"a worker ran the sensor: {sensed}"
    links = api.extra_links("buddy_wait_for_execution", run_id, "wait")["extra_links"]
    assert links.get("Buddy execution") == execution["html_url"], links


def test_a_failed_dag_run_cancels_what_it_left_going(e2e: E2E) -> None:
    """A person marks a release's gate failed while its Buddy deployment waits at "Approve production" (its staging
    task ended at the gate on purpose): the DAG run fails, and the DAG's failure callback, run by Airflow's
    dag-processor, cancels the deployment."""
    tag = _tag()
    emulator, api = e2e.emulator, e2e.deployment.rest
    run_id = f"failed_run_{tag}"
    api.trigger("buddy_release", run_id, {"branch": "main", "comment": f"e2e {run_id}"})
    wait_until(
        lambda: api.task_states("buddy_release", run_id).get("staging") == "success",
        "staging ended at its gate", 300, interval=1.0, alive=e2e.deployment.check_alive,
    )  # fmt: skip
    marker = hashlib.sha256(f"buddy_release|{run_id}|staging|-1".encode()).hexdigest()[:16]
    [execution] = [e for e in emulator.executions("web", 2) if marker in (e.get("comment") or "")]
    assert execution["status"] not in ("TERMINATED", "SUCCESSFUL", "FAILED")
    wait_until(
        lambda: api.task_states("buddy_release", run_id).get("approve") in ("deferred", "awaiting_input"),
        "the gate asking", 120, interval=1.0, alive=e2e.deployment.check_alive,
    )  # fmt: skip
    marked = api.request("PATCH", f"/api/v2/dags/buddy_release/dagRuns/{run_id}/taskInstances/approve", json={"new_state": "failed"})
    marked.raise_for_status()

    def cancelled() -> bool:
        return [e for e in emulator.executions("web", 2) if e["id"] == execution["id"]][0]["status"] == "TERMINATED"

    wait_until(cancelled, "the failed DAG run's Buddy execution cancelled", 180, interval=1.0, alive=e2e.deployment.check_alive)
    cancels = [r for r in emulator.requests() if r["method"] == "PATCH" and r["path"].endswith(f"/executions/{execution['id']}")]
    assert [(r.get("json") or {}).get("operation") for r in cancels] == ["CANCEL"]


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
    body = {
        "connection_id": "e2e_buddy_test",
        "conn_type": "buddy",
        "host": emulator.url,
        "login": emulator.workspace,
        "password": emulator.token,
    }
    good = api.request("POST", "/api/v2/connections/test", json=body)
    assert good.status_code == 200 and good.json()["status"] is True, good.text
    bad = api.request("POST", "/api/v2/connections/test", json={**body, "password": "not-the-token"})
    assert bad.status_code == 200 and bad.json()["status"] is False, bad.text
    assert "not-the-token" not in bad.text
