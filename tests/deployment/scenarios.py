"""Scenarios over a running :class:`~tests.deployment.harness.AirflowDeployment`: start DAG runs, let a person (the
:class:`~tests.deployment.harness.HitlAnswerer`) answer their gates, wait until they end, then judge them by the
emulator's own records, not by Airflow's word.

What one scenario collects (:class:`ScenarioResult`):

- **race-failed tries**: the scheduler's "Executor ... reported that the task instance <...> finished with state
  success, but the task instance's state attribute is queued|running|scheduled" lines for the scenario's DAG runs:
  the try was failed by Airflow's defer race (the worker's exit of the deferring try was reported after the task had
  been queued again), not by the task's code;
- **failed tries**: every try Airflow records as failed / up_for_retry (``GET .../taskInstances/{task}/tries``);
- **stuck after answer**: a gate whose HITL request was answered (``response_received``) but whose task instance stays
  ``awaiting_input`` -- the answer was taken while the task was still parking itself, and nothing resumes it;
- **orphaned**: a Buddy execution a DAG run started that is not in a final state ``settle`` seconds after that DAG
  run ended (it waits for a person in Buddy, or runs on, with nobody in Airflow waiting for it);
- **inconsistent**: a final Buddy state that contradicts the DAG run (approved and succeeded, but not SUCCESSFUL; Buddy
  deployed -- SUCCESSFUL after the approval -- but the DAG run failed; Reject not TERMINATED; timed out, not cancelled);
- **duplicates**: more than one execution carrying one task instance's ``[airflow:<hash>]`` marker;
- **approvals sent twice**: more than one APPLY / APPLY_VARIABLES PATCH to one execution;
- **rejects without CANCEL**: a Reject answered in Airflow with no CANCEL PATCH to the execution.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.deployment.harness import AirflowApi, AirflowDeployment, Answer, EmulatorProcess, HitlAnswerer, timestamp

PROJECT = "web"
FINAL_BUDDY = {"SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED"}
APPROVALS = {"APPLY", "APPLY_VARIABLES"}
PATCH_PATH = re.compile(r"/projects/[^/]+/pipelines/(\d+)/executions/(\d+)$")

# the run-starting tasks of each example DAG and the Buddy pipeline (id in demo.json) each runs
RUN_TASKS: dict[str, dict[str, int]] = {
    "buddy_release": {"build": 1, "staging": 2},
    "buddy_pass_arguments": {"start": 3},
    "buddy_cancel_on_timeout": {"deploy": 4},
}
# the task whose execution a gate answers, per DAG
GATED: dict[str, tuple[str, str]] = {"buddy_release": ("approve", "staging"), "buddy_pass_arguments": ("answer", "start")}
PASS_ARGUMENTS = {"RELEASE_NOTES": "Faster builds, from the e2e suite", "VERSION": "1.4.1"}


def marker(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The ``[airflow:<hash>]`` marker the run operator puts into its run's comment (see operators/reattach.py)."""
    digest = hashlib.sha256(f"{dag_id}|{run_id}|{task_id}|{map_index}".encode()).hexdigest()[:16]
    return f"[airflow:{digest}]"


@dataclass
class RunPlan:
    """One DAG run of a scenario: what to start, how its gate is answered, what should come of it."""

    dag_id: str
    run_id: str
    conf: dict[str, Any] = field(default_factory=dict)
    answer: Answer | None = None
    expect: str = "success"  # the DAG run's expected final state

    @property
    def choice(self) -> str | None:
        return self.answer.choice if self.answer is not None else None


@dataclass
class ScenarioResult:
    """What one scenario saw; the numbers of the module's summary table."""

    name: str
    dag_runs: int = 0
    dag_runs_as_expected: int = 0
    race_failed_tries: int = 0
    failed_tries: int = 0
    stuck_after_answer: int = 0
    orphaned: int = 0
    inconsistent: int = 0
    duplicates: int = 0
    approvals_twice: int = 0
    rejects_without_cancel: int = 0
    executions: int = 0
    answers: int = 0
    answer_latency_max: float | None = None  # seconds from a HITL request's creation to the answer's HTTP reply
    answer_latency_median: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    race_lines: list[str] = field(default_factory=list)
    dag_run_states: dict[str, str] = field(default_factory=dict)
    task_states: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """
        What makes the scenario fail (empty when everything held): outcomes, not Airflow's own mishaps. A try failed by
        the defer race is counted and shown, but a product that survives it (the DAG run still ends as it should, Buddy
        is left in the right state, nothing is sent twice) passes.
        """
        found = []
        if self.dag_runs_as_expected != self.dag_runs:
            found.append(f"{self.dag_runs - self.dag_runs_as_expected} of {self.dag_runs} DAG runs did not end as expected")
        for name in ("stuck_after_answer", "orphaned", "inconsistent", "duplicates", "approvals_twice", "rejects_without_cancel"):
            if getattr(self, name):
                found.append(f"{name.replace('_', ' ')}: {getattr(self, name)}")
        return found


class Scenario:
    """
    Start a scenario's DAG runs, wait until each ended (or is stuck), then check them against the emulator.

    :param name: the scenario's name in the summary table.
    :param deployment: the running deployment.
    :param emulator: the Buddy emulator its ``buddy_default`` connection points at.
    :param answerer: the person answering gates.
    """

    def __init__(self, name: str, deployment: AirflowDeployment, emulator: EmulatorProcess, answerer: HitlAnswerer) -> None:
        self.name = name
        self.deployment = deployment
        self.api: AirflowApi = deployment.rest
        self.emulator = emulator
        self.answerer = answerer
        self.plans: list[RunPlan] = []
        self.started = time.monotonic()
        self.result = ScenarioResult(name)

    # ---- starting ----
    def start(self, plans: Iterable[RunPlan]) -> list[RunPlan]:
        """Trigger the DAG runs (answers planned before the trigger, so none is missed)."""
        new = list(plans)
        for plan in new:
            if plan.answer is not None:
                self.answerer.plan(plan.run_id, plan.answer)
        threads = [threading.Thread(target=self.api.trigger, args=(p.dag_id, p.run_id, p.conf)) for p in new]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.plans += new
        return new

    # ---- waiting ----
    def wait(self, timeout: float, *, stuck_after: float = 30.0) -> None:
        """
        Wait until every DAG run ended, or waits on a gate that was answered ``stuck_after`` seconds ago (stuck: marked
        failed through the REST API, as an operator would, so nothing of it lingers); raises TimeoutError after ``timeout``.
        """
        pending = {(p.dag_id, p.run_id) for p in self.plans}
        deadline = time.monotonic() + timeout
        while pending:
            self.deployment.check_alive()
            for dag_id, run_id in sorted(pending):
                state = self.api.dag_run(dag_id, run_id).get("state")
                if state in ("success", "failed"):
                    pending.discard((dag_id, run_id))
                elif self._stuck(dag_id, run_id, stuck_after):
                    self.result.stuck_after_answer += 1
                    self.result.notes.append(f"{dag_id}/{run_id}: gate answered but left awaiting_input; DAG run marked failed")
                    self.api.request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"}, attempts=3)
                    pending.discard((dag_id, run_id))
            if not pending:
                break
            if time.monotonic() > deadline:
                states = {f"{d}/{r}": self.api.task_states(d, r) for d, r in sorted(pending)}
                raise TimeoutError(f"{self.name}: DAG runs still going after {timeout:.0f}s: {states}")
            time.sleep(2.0)
        self.result.seconds = time.monotonic() - self.started

    def _stuck(self, dag_id: str, run_id: str, stuck_after: float) -> bool:
        gate = GATED.get(dag_id)
        if gate is None:
            return False
        states = self.api.task_states(dag_id, run_id)
        if states.get(gate[0]) != "awaiting_input":
            return False
        detail = self.api.hitl_detail(dag_id, run_id, gate[0])
        if not detail.get("response_received") or not detail.get("responded_at"):
            return False
        return time.time() - timestamp(str(detail["responded_at"])) > stuck_after

    # ---- judging ----
    def collect(self, settle: float = 10.0) -> ScenarioResult:
        """Count everything (see the module's docstring); Buddy executions get ``settle`` seconds to reach a final state."""
        result = self.result
        result.dag_runs = len(self.plans)
        runs = {p.run_id for p in self.plans}
        for plan in self.plans:
            state = str(self.api.dag_run(plan.dag_id, plan.run_id).get("state"))
            result.dag_run_states[plan.run_id] = state
            result.task_states[plan.run_id] = self.api.task_states(plan.dag_id, plan.run_id)
            result.dag_runs_as_expected += state == plan.expect
            for task_id in result.task_states[plan.run_id]:
                for try_ in self.api.tries(plan.dag_id, plan.run_id, task_id):
                    if try_.get("state") in ("failed", "up_for_retry"):
                        result.failed_tries += 1
        for line in self.deployment.race_lines():
            if line["run"] in runs:
                result.race_failed_tries += 1
                result.race_lines.append(line["line"])

        executions = self._settled_executions(settle)
        requests = self.emulator.requests()
        patches: dict[tuple[int, int], list[str]] = {}
        for request in requests:
            found = PATCH_PATH.search(request["path"]) if request["method"] == "PATCH" else None
            if found and isinstance(request.get("json"), dict):
                patches.setdefault((int(found.group(1)), int(found.group(2))), []).append(str(request["json"].get("operation")))
        for plan in self.plans:
            self._judge_run(plan, executions, patches)
        answers = self.answerer.records_for(runs)
        latencies = sorted(r.answered_after for r in answers if r.answered_after is not None and r.status is not None and r.status < 300)
        result.answers = len(latencies)
        if latencies:
            result.answer_latency_max = round(latencies[-1], 2)
            result.answer_latency_median = round(latencies[len(latencies) // 2], 2)
        return result

    def _settled_executions(self, settle: float) -> dict[int, list[dict[str, Any]]]:
        """Every pipeline's executions once those of this scenario are final, or ``settle`` seconds have passed."""
        markers = {marker(p.dag_id, p.run_id, task) for p in self.plans for task in RUN_TASKS.get(p.dag_id, {})}
        deadline = time.monotonic() + settle
        while True:
            executions = {pipeline: self.emulator.executions(PROJECT, pipeline) for pipeline in (1, 2, 3, 4)}
            going = [e for runs in executions.values() for e in runs if _marker_of(e) in markers and e["status"] not in FINAL_BUDDY]
            if not going or time.monotonic() > deadline:
                return executions
            time.sleep(1.0)

    def _judge_run(self, plan: RunPlan, executions: dict[int, list[dict[str, Any]]], patches: dict[tuple[int, int], list[str]]) -> None:
        result = self.result
        state = result.dag_run_states[plan.run_id]
        tasks = result.task_states[plan.run_id]
        gate_execution: dict[str, Any] | None = None
        gate = GATED.get(plan.dag_id)
        for task_id, pipeline in RUN_TASKS.get(plan.dag_id, {}).items():
            mark = marker(plan.dag_id, plan.run_id, task_id)
            mine = [e for e in executions[pipeline] if _marker_of(e) == mark]
            result.executions += len(mine)
            if len(mine) > 1:
                result.duplicates += len(mine) - 1
                result.notes.append(f"{plan.dag_id}/{plan.run_id}.{task_id}: {len(mine)} Buddy executions {[e['id'] for e in mine]}")
            for execution in mine:
                where = f"{plan.dag_id}/{plan.run_id}.{task_id}: Buddy execution {execution['id']} ({execution['status']})"
                if execution["status"] not in FINAL_BUDDY:
                    result.orphaned += 1
                    result.notes.append(f"{where} not final after its DAG run ended {state}")
                operations = patches.get((pipeline, int(execution["id"])), [])
                if sum(op in APPROVALS for op in operations) > 1:
                    result.approvals_twice += 1
                    result.notes.append(f"{where} approved {sum(op in APPROVALS for op in operations)} times: {operations}")
            if gate is not None and gate[1] == task_id and mine:
                gate_execution = mine[-1]
            if not mine and tasks.get(task_id) not in (None, "None", "upstream_failed", "skipped", "removed"):
                result.notes.append(
                    f"{plan.dag_id}/{plan.run_id}.{task_id}: task {tasks.get(task_id)} but no Buddy execution carries its marker"
                )
        if gate_execution is not None and state == "failed" and gate_execution["status"] == "SUCCESSFUL":
            result.inconsistent += 1
            result.notes.append(
                f"{plan.dag_id}/{plan.run_id}: Buddy execution {gate_execution['id']} SUCCESSFUL (approved, deployed) but the DAG run "
                f"failed (tasks {tasks})"
            )
        # what the gate's answer should have done in Buddy
        if gate_execution is not None and plan.choice is not None and tasks.get(gate[0] if gate else "") == "success":
            operations = patches.get((RUN_TASKS[plan.dag_id][gate[1]] if gate else 0, int(gate_execution["id"])), [])
            execution_text = f"Buddy execution {gate_execution['id']} {gate_execution['status']} {operations}"
            where = f"{plan.dag_id}/{plan.run_id}: gate {plan.choice}, {execution_text}"
            if plan.choice == "Reject":
                if "CANCEL" not in operations:
                    result.rejects_without_cancel += 1
                    result.notes.append(f"{where}: no CANCEL")
                if gate_execution["status"] != "TERMINATED":
                    result.inconsistent += 1
                    result.notes.append(f"{where}: Reject should leave it TERMINATED")
            elif state == "success" and gate_execution["status"] != "SUCCESSFUL":
                result.inconsistent += 1
                result.notes.append(f"{where}: approved and the DAG run succeeded, but Buddy's run did not")
        if plan.dag_id == "buddy_cancel_on_timeout":
            mine = [e for e in executions[4] if _marker_of(e) == marker(plan.dag_id, plan.run_id, "deploy")]
            if mine and mine[-1]["status"] != "TERMINATED":
                result.inconsistent += 1
                result.notes.append(
                    f"{plan.dag_id}/{plan.run_id}: timed out, but Buddy execution {mine[-1]['id']} is {mine[-1]['status']} (not cancelled)"
                )


def _marker_of(execution: dict[str, Any]) -> str | None:
    found = re.search(r"\[airflow:[0-9a-f]{16}\]", str(execution.get("comment") or ""))
    return found.group(0) if found else None


def cancels_sent(emulator: EmulatorProcess, since: float) -> Counter[str]:
    """CANCEL PATCHes the emulator received since ``since`` (Unix time), by path."""
    return Counter(
        r["path"]
        for r in emulator.requests()
        if r["method"] == "PATCH" and r["time"] >= since and isinstance(r.get("json"), dict) and r["json"].get("operation") == "CANCEL"
    )


def format_table(results: Iterable[ScenarioResult]) -> str:
    """The module's summary table (plain text)."""
    columns = [
        ("scenario", 30),
        ("DAG runs", 8),
        ("as expected", 11),
        ("race-failed tries", 17),
        ("failed tries", 12),
        ("stuck after answer", 18),
        ("orphaned", 8),
        ("inconsistent", 12),
        ("duplicates", 10),
        ("approvals twice", 15),
        ("reject no CANCEL", 16),
        ("answer s (med/max)", 18),
        ("wall s", 7),
    ]
    lines = [" | ".join(name.ljust(width) for name, width in columns)]
    lines.append("-+-".join("-" * width for _, width in columns))
    for r in results:
        latency = f"{r.answer_latency_median}/{r.answer_latency_max}" if r.answers else "-"
        values = [
            r.name, r.dag_runs, r.dag_runs_as_expected, r.race_failed_tries, r.failed_tries, r.stuck_after_answer, r.orphaned,
            r.inconsistent, r.duplicates, r.approvals_twice, r.rejects_without_cancel, latency, f"{r.seconds:.0f}",
        ]  # fmt: skip
        lines.append(" | ".join(str(v).ljust(width) for v, (_, width) in zip(values, columns, strict=True)))
    return "\n".join(lines)
