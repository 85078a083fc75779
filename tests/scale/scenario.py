"""The scale-out scenarios: hundreds of deferred Buddy waits across two triggerers, one of them lost mid-wait.

:class:`TriggererKilled` (SIGKILL) and :class:`TriggererFrozen` (SIGSTOP past Airflow's health threshold, then
SIGCONT) run on a :class:`~tests.scale.conftest.Cluster` and are judged by the emulator's own records and Airflow's
tables; :class:`ScaleResult` holds the figures. Steps (times are ``time.time()``):

1. start the CI runs "in Buddy" (the emulator's control endpoint) that the sensors wait on, then trigger every DAG
   run over REST;
2. wait until every wait is deferred, every trigger is held by a triggerer and the gated deploys passed their first
   approval; record which triggerer holds which trigger (Airflow's ``trigger.triggerer_id``); let ``STEADY``
   intervals pass (the window before the loss);
3. lose the triggerer holding more: SIGKILL its whole session (no graceful exit, no ``on_kill``), or SIGSTOP it;
4. **takeover**: until its triggers are all assigned to the other triggerer and each has *started* there (that
   triggerer's ``trigger ... (ID n) starting`` line in the task's trigger log ``...log.trigger.<job id>.log``); let
   ``STEADY`` intervals pass (the window after the takeover); a frozen triggerer is then let go on (SIGCONT) and
   watched while it finds its triggers gone;
5. a person marks the ``scale_cancel`` tasks failed (REST): the triggerer holding them cancels their Buddy runs
   (``on_kill``);
6. move the emulator's clock on so the runs finish (spread over about half a minute), wait for every DAG run;
7. judge: DAG runs and task states as expected; duplicates (``[airflow:<hash>]`` markers, or runs nobody planned),
   approvals and cancels sent twice or missing, cancels nobody asked for, orphans (executions not final after their
   DAG run ended); reads per execution per interval (the emulator's request log, by the ``X-Scale-Client`` label:
   which triggerer asked) against the number of triggerers watching the execution; requests per second against the
   ideal (executions / interval); CPU and RSS per triggerer; lateness (the run's end in Buddy -> the task's end in
   Airflow, split at the trigger's event).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import statistics
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tests.deployment.harness import timestamp, wait_until
from tests.scale.cluster import MACHINE
from tests.scale.dags import (
    BUILD_PIPELINE,
    CI_PIPELINES,
    DAG_PREFIX,
    DOOMED_PIPELINE,
    GATE_AT,
    GATE_PIPELINE,
    GATED_PIPELINE,
    GATES,
    LONG,
    RED_PIPELINE,
    Size,
)

if TYPE_CHECKING:
    from tests.scale.conftest import Cluster

PROJECT = "web"
FINAL_BUDDY = {"SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED"}
EXECUTION_PATH = re.compile(r"/projects/[^/]+/pipelines/(\d+)/executions/(\d+)$")
LABEL_HEADER = "x-scale-client"
STEADY = 2  # intervals measured before the loss and after the takeover
STARTING = re.compile(r"\(ID (\d+)\) starting")
GUARD = "apache/airflow#73454"  # the provider's on_kill guard: a trigger handed to another triggerer is not cancelled
ALL_PIPELINES = [*CI_PIPELINES, RED_PIPELINE, BUILD_PIPELINE, GATED_PIPELINE, DOOMED_PIPELINE, GATE_PIPELINE]
RUN_OPERATORS = ("scale_release", "scale_cancel", "scale_gate")

Key = tuple[int, int]  # (pipeline, execution id)
TaskKey = tuple[str, str, str]  # (dag, run, task)


def marker(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The ``[airflow:<hash>]`` marker the run operator puts into its run's comment."""
    return "[airflow:" + hashlib.sha256(f"{dag_id}|{run_id}|{task_id}|{map_index}".encode()).hexdigest()[:16] + "]"


def _marker_of(execution: dict[str, Any]) -> str | None:
    found = re.search(r"\[airflow:[0-9a-f]{16}\]", str(execution.get("comment") or ""))
    return found.group(0) if found else None


def _when(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return timestamp(str(value))


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "p50": round(values[len(values) // 2], 2),
        "p95": round(values[min(len(values) - 1, int(len(values) * 0.95))], 2),
        "max": round(values[-1], 2),
        "min": round(values[0], 2),
    }


@dataclass
class RunPlan:
    dag_id: str
    run_id: str
    conf: dict[str, Any]
    expect: str  # the DAG run's final state
    expect_tasks: str  # every task's final state


@dataclass
class TriggererFigures:
    name: str
    job_id: int | None = None
    held_before: int = 0  # triggers held just before the loss
    held_after: int = 0  # after the takeover
    lost: bool = False
    cpu_seconds: float = 0.0  # over the scenario (to the kill for a killed one)
    cpu_cores_before: float = 0.0  # average share of one core in the window before the loss
    cpu_cores_takeover: float = 0.0  # from the loss to the takeover
    cpu_cores_after: float = 0.0  # in the window after the takeover
    cpu_cores_finishing: float = 0.0  # while the runs finish (events, task ends)
    rss_idle_mb: float = 0.0  # before the scenario's waits
    rss_before_mb: float = 0.0  # just before the loss
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    buddy_requests: int = 0


@dataclass
class ScaleResult:
    """The figures of one run of a scenario."""

    name: str
    size: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    dag_runs: int = 0
    dag_runs_as_expected: int = 0
    tasks_not_as_expected: int = 0
    waits_deferred: int = 0
    triggerers: list[TriggererFigures] = field(default_factory=list)
    lost: str = ""
    how: str = ""
    takeover_assigned_s: float | None = None  # loss -> every trigger of the lost one assigned to the other
    takeover_running_s: float | None = None  # loss -> every one of them started on the other
    taken_over: int = 0
    executions: int = 0
    duplicates: int = 0
    orphaned: int = 0
    approvals_twice: int = 0  # more approvals Buddy accepted than the run had gates
    approvals_refused: int = 0  # approvals Buddy refused (400: nothing waiting) -- a second copy of a trigger acting
    approvals_missing: int = 0
    cancels_twice: int = 0
    cancels_missing: int = 0
    cancels_unwanted: int = 0
    double_reads: int = 0  # one triggerer reading one running execution twice within half an interval, not acting on it
    # (reported, not a problem: within the bound, counted by reads_over_bound, it is a wasted read — seen while
    # a triggerer starts hundreds of triggers at once; the shared poller dates a read from its poll's start)
    act_reads: int = 0  # the same, around an approval or cancel it sent (reading the result of its own change)
    stall_reads: int = 0  # the same, right after that triggerer's event loop was blocked (its reads' ages jumped)
    end_of_wait_rereads: int = 0  # the same, once the execution had ended: waiters of one execution ending one by one
    reads_at_end_max: int = 0  # the most reads of one ended execution within 0.9 interval, by one triggerer
    reads_over_bound: int = 0  # an execution read more often within 0.9 interval than triggerers watched it
    reads_per_execution_interval_max: dict[str, int] = field(default_factory=dict)  # by window
    reads_per_execution_interval_mean: dict[str, float] = field(default_factory=dict)
    shared_across_triggerers: int = 0  # executions with waiters on both triggerers before the loss
    requests_per_second: dict[str, float] = field(default_factory=dict)
    ideal_per_second: float = 0.0
    requests_total: int = 0
    requests_by_client: dict[str, int] = field(default_factory=dict)
    lateness_s: dict[str, float] = field(default_factory=dict)  # ended in the triggerer: run end -> task end
    lateness_seen_s: dict[str, float] = field(default_factory=dict)  # run end -> the trigger's event
    lateness_recorded_s: dict[str, float] = field(default_factory=dict)  # the trigger's event -> task end in Airflow
    lateness_worker_s: dict[str, float] = field(default_factory=dict)  # failures, resumed on a worker
    guard_on_kill: int = 0  # the provider's apache/airflow#73454 guard (a reassigned trigger not cancelled)
    unplanned_moves: int = 0  # triggers started on a triggerer other than planned (a live triggerer's triggers taken)
    stalls: dict[str, list[float]] = field(default_factory=dict)  # per triggerer: event-loop blocks >= 1 s (seconds)
    heartbeat_gaps: dict[str, list[float]] = field(default_factory=dict)  # per triggerer: "Heartbeat recovered after"
    on_kill_called: int = 0  # Airflow's "Trigger cancelled by user action, invoking on_kill"
    race_failed_tries: int = 0
    retried_tasks: int = 0  # tasks that needed more than one try (Airflow's retries)
    other_cpu: dict[str, float] = field(default_factory=dict)  # cores over the scenario, other components
    other_cpu_finishing: dict[str, float] = field(default_factory=dict)  # cores while the runs finish
    machine_cores: dict[str, float] = field(default_factory=dict)  # busy cores of the whole machine, by phase
    lateness_detail: list[dict[str, Any]] = field(default_factory=list)  # per task: seconds from the scenario's start
    phases: dict[str, float] = field(default_factory=dict)  # seconds
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        found = []
        if self.dag_runs_as_expected != self.dag_runs:
            found.append(f"{self.dag_runs - self.dag_runs_as_expected} of {self.dag_runs} DAG runs did not end as expected")
        if self.tasks_not_as_expected:
            found.append(f"{self.tasks_not_as_expected} tasks did not end as expected")
        for name in (
            "duplicates",
            "orphaned",
            "approvals_twice",
            "approvals_missing",
            "cancels_twice",
            "cancels_missing",
            "cancels_unwanted",
            "reads_over_bound",
        ):
            if getattr(self, name):
                found.append(f"{name.replace('_', ' ')}: {getattr(self, name)}")
        idle = [t.name for t in self.triggerers if t.held_before == 0]
        if idle:
            found.append(f"triggerers holding no trigger before the loss: {idle}")
        if self.takeover_running_s is None:
            found.append("the lost triggerer's triggers were not all taken over")
        return found


class Scenario:
    """One run of a scenario on a running cluster; subclasses say how the triggerer is lost (:meth:`lose`)."""

    how = ""

    def __init__(self, cluster: Cluster, size: Size, name: str) -> None:
        self.cluster = cluster
        self.size = size
        self.api = cluster.deployment.rest
        self.emulator = cluster.emulator
        self.db = cluster.db
        self.clock = cluster.clock
        self.tag = time.strftime("%H%M%S")
        self.plans: list[RunPlan] = []
        self.ci_executions: dict[str, list[Key]] = {}  # run id -> its executions (sensor i waits on [i % k])
        self.result = ScaleResult(name, size.to_dict(), how=self.how)
        self.moments: dict[str, float] = {}
        self.first_execution = 0  # executions with a higher id belong to this scenario
        self.snapshot: dict[int | None, list[int]] = {}
        self.snapshot_tasks: dict[int, TaskKey] = {}

    def _requests(self) -> list[dict[str, Any]]:
        """The emulator's request log (tens of MB at the full size: a longer timeout than the control client's)."""
        response = self.emulator.client.get("/__emulator__/requests", timeout=300)
        response.raise_for_status()
        return list(response.json())

    # ---- 1. start ----
    def _start_in_buddy(self, pipeline: int, comment: str) -> Key:
        answer = self.emulator._call("POST", f"/start/{PROJECT}/{pipeline}", {"branch": {"name": "main"}, "comment": comment})
        return (pipeline, int(answer["id"]))

    def plan(self) -> None:
        size, tag = self.size, self.tag
        for i in range(size.release_runs):
            self.plans.append(RunPlan("scale_release", f"release_{tag}_{i}", {}, "success", "success"))
        for i in range(size.cancel_runs):
            self.plans.append(RunPlan("scale_cancel", f"cancel_{tag}_{i}", {}, "failed", "failed"))
        for i in range(size.gate_runs):
            self.plans.append(RunPlan("scale_gate", f"gate_{tag}_{i}", {}, "success", "success"))
        pipelines = iter(CI_PIPELINES * (size.ci_runs + size.shared_ci))
        shared = [
            self._start_in_buddy(next(pipelines), f"CI shared by ci_{tag}_{k} and ci_{tag}_{k + size.shared_ci}")
            for k in range(size.shared_ci)
        ]
        for i in range(size.ci_runs):
            run_id = f"ci_{tag}_{i}"
            keys = [self._start_in_buddy(next(pipelines), f"CI for {run_id}"), shared[i % size.shared_ci]]
            self.ci_executions[run_id] = keys
            self.plans.append(RunPlan("scale_ci_watch", run_id, {"executions": [list(k) for k in keys]}, "success", "success"))
        for i in range(size.red_runs):
            run_id = f"red_{tag}_{i}"
            key = self._start_in_buddy(RED_PIPELINE, f"CI for {run_id}")
            self.ci_executions[run_id] = [key]
            self.plans.append(RunPlan("scale_red", run_id, {"execution": key[1]}, "failed", "failed"))

    def trigger(self) -> None:
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda p: self.api.trigger(p.dag_id, p.run_id, p.conf), self.plans))

    # ---- 2. all deferred ----
    def _operations(self, since: float) -> dict[Key, list[str]]:
        found: dict[Key, list[str]] = defaultdict(list)
        for r in self._requests():
            hit = EXECUTION_PATH.search(r["path"]) if r["method"] == "PATCH" and r["time"] >= since else None
            if hit and isinstance(r.get("json"), dict):
                label = (r.get("headers") or {}).get(LABEL_HEADER, "direct")
                found[(int(hit.group(1)), int(hit.group(2)))].append(f"{r['json'].get('operation')}:{r.get('status')}:{label}")
        return found

    def wait_all_deferred(self, timeout: float) -> None:
        size, start = self.size, self.moments["start"]
        mine = {p.run_id for p in self.plans}

        def ready() -> bool:
            ended = {
                run: state for run, state in self.db.dag_run_states(DAG_PREFIX).items() if run in mine and state in ("success", "failed")
            }
            if ended:  # a run ended before its waits all deferred: no point waiting (say why)
                tasks = {k: v for k, v in self.db.task_states(ended).items() if v[0] not in ("deferred", "success")}
                raise RuntimeError(f"DAG runs ended before every wait deferred: {ended}; their tasks {tasks}")
            held = self.db.triggers_by_triggerer(DAG_PREFIX)
            tasks = self.db.trigger_tasks([t for ids in held.values() for t in ids])
            ours = {t for t, task in tasks.items() if task[1] in mine}
            self.result.waits_deferred = len(ours)
            if len(ours) < size.waits or any(t in ours for t in held.get(None, [])):
                return False
            approvals = sum(op.startswith("APPLY:") for ops in self._operations(start).values() for op in ops)
            return approvals >= size.release_runs  # the first gate of every gated deploy, approved from a triggerer

        wait_until(ready, f"all {size.waits} waits deferred and held", timeout, interval=2.0, alive=self.cluster.deployment.check_alive)

    def take_snapshot(self) -> None:
        """Which triggerer holds which of this scenario's triggers, and each trigger's task (while they exist)."""
        mine = {p.run_id for p in self.plans}
        held = self.db.triggers_by_triggerer(DAG_PREFIX)
        tasks = self.db.trigger_tasks([t for ids in held.values() for t in ids])
        self.snapshot_tasks = {t: task for t, task in tasks.items() if task[1] in mine}
        self.snapshot = {job: [t for t in ids if t in self.snapshot_tasks] for job, ids in held.items()}

    # ---- 4. takeover ----
    def _started_on(self, job_id: int, trigger_ids: set[int]) -> dict[int, float]:
        """When each trigger started on triggerer job ``job_id`` (its task's trigger log from that job)."""
        found: dict[int, float] = {}
        for path in (self.cluster.deployment.home / "logs").rglob(f"*.log.trigger.{job_id}.log"):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                hit = STARTING.search(line)
                if hit and int(hit.group(1)) in trigger_ids:
                    found[int(hit.group(1))] = timestamp(json.loads(line)["timestamp"])
        return found

    def wait_takeover(self, lost: TriggererFigures, other: TriggererFigures) -> None:
        result, victims = self.result, set(self.snapshot.get(lost.job_id, []))
        result.taken_over = len(victims)

        def assigned() -> bool:
            return victims <= set(self.db.triggers_by_triggerer(DAG_PREFIX).get(other.job_id, []))

        wait_until(assigned, "the lost triggerer's triggers assigned to the other", 180, interval=0.5)
        self.moments["assigned"] = time.time()
        result.takeover_assigned_s = round(self.moments["assigned"] - self.moments["loss"], 2)

        def running() -> dict[int, float] | None:
            started = self._started_on(other.job_id or 0, victims)
            return started if len(started) >= len(victims) else None

        started = wait_until(running, "the lost triggerer's triggers started on the other", 180, interval=1.0)
        self.moments["running"] = max(started.values())
        result.takeover_running_s = round(self.moments["running"] - self.moments["loss"], 2)

    def lose(self, lost: TriggererFigures, other: TriggererFigures) -> None:
        raise NotImplementedError

    # ---- 6. the clock ----
    def finish_runs(self) -> None:
        """Move the emulated clock so the earliest run ends in ~5 s; speed it up so the rest follow within ~30 s."""
        starts = [_when(e["start_date"]) or 0.0 for e in self._executions() if e["pipeline"] not in (DOOMED_PIPELINE, GATE_PIPELINE)]
        emulated_now = self.clock.emulated(time.time())
        first, last = min(starts), max(starts)
        jump = max(0.0, first + LONG - emulated_now - 5.0)
        speed = min(10.0, max(1.0, (last - first + 30.0) / 30.0))
        self.clock.advance(jump)
        self.clock.set_speed(speed)
        self.result.settings["clock"] = {"advanced_s": round(jump, 1), "speed_after": round(speed, 2)}

    # ---- the whole run ----
    def run(self, timeout: float) -> ScaleResult:
        cluster, result, size = self.cluster, self.result, self.size
        deadline = time.monotonic() + timeout
        if self.clock.speed != 1.0:
            self.clock.set_speed(1.0)
        self.first_execution = max((int(e["id"]) for e in self._executions(everything=True)), default=0)
        self.emulator.reset_requests()  # an earlier scenario's requests are judged already
        cluster.meter.sample_now()
        t0 = self.moments["start"] = time.time()
        self.plan()
        self.trigger()
        self.moments["triggered"] = time.time()
        self.wait_all_deferred(max(60.0, deadline - time.monotonic()))
        self.moments["all deferred"] = time.time()
        time.sleep(STEADY * size.interval)
        self.take_snapshot()
        jobs = cluster.triggerer_jobs
        for name, job in jobs.items():
            result.triggerers.append(TriggererFigures(name, job, held_before=len(self.snapshot.get(job, []))))
        unknown = [job for job in self.snapshot if job not in jobs.values()]
        if unknown:
            result.notes.append(f"triggers held by unknown triggerer jobs {unknown}")
        lost = max(result.triggerers, key=lambda t: t.held_before)
        other = next(t for t in result.triggerers if t is not lost)
        lost.lost = True
        result.lost = lost.name
        cluster.meter.sample_now()
        self.moments["loss"] = time.time()
        self.lose(lost, other)
        held = self.db.triggers_by_triggerer(DAG_PREFIX)
        other.held_after = len([t for t in held.get(other.job_id, []) if t in self.snapshot_tasks])

        # ---- 5. a person marks the doomed deploys failed ----
        for plan in self.plans:
            if plan.dag_id == "scale_cancel":
                path = f"/api/v2/dags/{plan.dag_id}/dagRuns/{plan.run_id}/taskInstances/deploy"
                response = self.api.request("PATCH", path, json={"new_state": "failed"}, attempts=3)
                if response.status_code >= 300:
                    result.notes.append(f"marking {plan.run_id}.deploy failed: HTTP {response.status_code} {response.text[:200]}")
        self.moments["marked failed"] = time.time()

        # ---- 6. the runs finish ----
        self.finish_runs()
        self.moments["clock moved"] = time.time()
        pending = {(p.dag_id, p.run_id) for p in self.plans}
        self.api.wait_dag_runs(pending, max(120.0, deadline - time.monotonic()), on_poll=cluster.deployment.check_alive)
        self.moments["all ended"] = time.time()
        self.collect()
        m = self.moments
        result.phases = {
            "start -> triggered": round(m["triggered"] - t0, 1),
            "triggered -> all deferred": round(m["all deferred"] - m["triggered"], 1),
            "loss -> takeover (running)": round(m["running"] - m["loss"], 1),
            "clock moved -> all DAG runs ended": round(m["all ended"] - m["clock moved"], 1),
            "scenario": round(m["all ended"] - t0, 1),
        }
        return result

    # ---- 7. judging ----
    def _executions(self, everything: bool = False) -> list[dict[str, Any]]:
        found = []
        for pipeline in ALL_PIPELINES:
            for execution in self.emulator.executions(PROJECT, pipeline):
                if everything or int(execution["id"]) > self.first_execution:
                    found.append({**execution, "pipeline": pipeline})
        return found

    def _settled(self, settle: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + settle
        while True:
            executions = self._executions()
            if all(e["status"] in FINAL_BUDDY for e in executions) or time.monotonic() > deadline:
                return executions
            time.sleep(1.0)

    def _trigger_logs(self) -> dict[TaskKey, list[tuple[int, str, float]]]:
        """Per task of this scenario, what its trigger logs say: (triggerer job, event, time) of the lines that matter."""
        found: dict[TaskKey, list[tuple[int, str, float]]] = defaultdict(list)
        mine = {p.run_id for p in self.plans}
        wanted = ("Trigger fired event", "starting", "cancelled by user action", GUARD, "cancel")
        for path in (self.cluster.deployment.home / "logs").rglob("*.log.trigger.*.log"):
            parts = {k: v for k, _, v in (part.partition("=") for part in path.parts if "=" in part)}
            if parts.get("run_id") not in mine:
                continue
            job = int(path.name.rsplit(".log", 2)[-2].rsplit(".", 1)[-1])
            task = (parts["dag_id"], parts["run_id"], parts["task_id"])
            for line in path.read_text(errors="replace").splitlines():
                if any(w in line for w in wanted):
                    with_time = json.loads(line)
                    found[task].append((job, str(with_time.get("event")), timestamp(with_time["timestamp"])))
        return found

    def collect(self) -> None:
        result, size, cluster = self.result, self.size, self.cluster
        cluster.meter.sample_now()
        tasks = self.db.task_ends(DAG_PREFIX)
        runs = {p.run_id for p in self.plans}
        result.dag_runs = len(self.plans)
        for plan in self.plans:
            state = str(self.api.dag_run(plan.dag_id, plan.run_id).get("state"))
            if state == plan.expect:
                result.dag_runs_as_expected += 1
            else:
                result.notes.append(f"{plan.dag_id}/{plan.run_id} ended {state}, expected {plan.expect}")
            for (dag, run, task), (ti_state, _, _) in tasks.items():
                if run == plan.run_id and dag == plan.dag_id and ti_state != plan.expect_tasks:
                    result.tasks_not_as_expected += 1
                    result.notes.append(f"{dag}/{run}.{task} ended {ti_state}, expected {plan.expect_tasks}")
        result.race_failed_tries = sum(1 for line in cluster.deployment.race_lines() if line["run"] in runs)
        tries = self.db.task_states(runs)
        result.retried_tasks = sum(1 for _, number in tries.values() if number > 1)
        for (run, task), (_, number) in tries.items():
            if number > 1:
                result.notes.append(f"{run}.{task} took {number} tries")

        executions = self._settled()
        by_key = {(e["pipeline"], int(e["id"])): e for e in executions}
        result.executions = len(executions)
        for e in executions:
            if e["status"] not in FINAL_BUDDY:
                result.orphaned += 1
                result.notes.append(f"execution {e['pipeline']}/{e['id']} ({e['comment']}) still {e['status']} after its DAG run ended")
        task_execution: dict[TaskKey, Key] = {}
        for plan in self.plans:
            if plan.dag_id in RUN_OPERATORS:
                task_ids = ["deploy"]
                if plan.dag_id == "scale_release":
                    task_ids += [f"build_{i}" for i in range(size.builds_per_release)]
                for task_id in task_ids:
                    mark = marker(plan.dag_id, plan.run_id, task_id)
                    mine = [e for e in executions if _marker_of(e) == mark]
                    if len(mine) > 1:
                        result.duplicates += len(mine) - 1
                        result.notes.append(f"{plan.run_id}.{task_id}: {len(mine)} Buddy executions {[e['id'] for e in mine]}")
                    if not mine:
                        result.notes.append(f"{plan.run_id}.{task_id}: no Buddy execution carries its marker")
                        continue
                    task_execution[(plan.dag_id, plan.run_id, task_id)] = (mine[0]["pipeline"], int(mine[0]["id"]))
            else:
                keys = self.ci_executions[plan.run_id]
                count = size.sensors_per_run if plan.dag_id == "scale_ci_watch" else 2
                for i in range(count):
                    task_execution[(plan.dag_id, plan.run_id, f"watch_{i}")] = keys[i % len(keys)]
        strays = [k for k in by_key if k not in set(task_execution.values())]
        if strays:  # a run nobody planned (a second run of a task whose comment lost its marker, say)
            result.duplicates += len(strays)
            result.notes.append(f"executions nobody planned: {strays[:10]}")

        requests = [r for r in self._requests() if r["time"] >= self.moments["start"]]
        operations: dict[Key, list[str]] = defaultdict(list)
        acts: dict[tuple[Key, str], list[float]] = defaultdict(list)  # PATCH times by execution and sender
        reads: dict[Key, list[tuple[float, str]]] = defaultdict(list)
        by_client: Counter[str] = Counter()
        for r in requests:
            found = EXECUTION_PATH.search(r["path"])
            label = str((r.get("headers") or {}).get(LABEL_HEADER, "direct"))
            by_client[label] += 1
            if not found:
                continue
            key = (int(found.group(1)), int(found.group(2)))
            if r["method"] == "PATCH" and isinstance(r.get("json"), dict):
                operations[key].append(f"{r['json'].get('operation')}:{r.get('status')}:{label}")
                acts[(key, label)].append(float(r["time"]))
            elif r["method"] == "GET":
                reads[key].append((float(r["time"]), label))
        result.requests_total = len(requests)
        result.requests_by_client = dict(by_client)
        for figures in result.triggerers:
            figures.buddy_requests = by_client.get(figures.name, 0)
        doomed: set[Key] = set()
        for plan in self.plans:
            key = task_execution.get((plan.dag_id, plan.run_id, "deploy"))
            if plan.dag_id == "scale_release":
                sent = [op for op in operations.get(key, []) if op.startswith("APPLY:")] if key else []
                applies = [op for op in sent if op.startswith("APPLY:2")]
                result.approvals_refused += len(sent) - len(applies)
                if len(applies) > GATES:
                    result.approvals_twice += 1
                elif len(applies) < GATES:
                    result.approvals_missing += 1
                if len(sent) != GATES:
                    result.notes.append(f"{plan.run_id}.deploy: execution {key} ({GATES} gates) got {len(sent)} approvals: {sent}")
            if plan.dag_id == "scale_cancel" and key is not None:
                doomed.add(key)
                cancels = [op for op in operations.get(key, []) if op.startswith("CANCEL:")]
                if len(cancels) > 1:
                    result.cancels_twice += 1
                    result.notes.append(f"{plan.run_id}.deploy: execution {key} cancelled {len(cancels)} times: {cancels}")
                if not cancels or by_key[key]["status"] != "TERMINATED":
                    result.cancels_missing += 1
                    result.notes.append(f"{plan.run_id}.deploy: execution {key} {by_key[key]['status']}, cancels {cancels}")
        for key, ops in operations.items():
            if key not in doomed and any(op.startswith("CANCEL:") for op in ops):
                result.cancels_unwanted += 1
                result.notes.append(f"execution {key} got a CANCEL nobody asked for: {ops}")

        logs = self._trigger_logs()
        self.log_events = self._triggerer_log_events()
        result.stalls = {n: [round(s, 1) for kind, _, s in ev if kind == "blocked" and s >= 1.0] for n, ev in self.log_events.items()}
        result.heartbeat_gaps = {n: [round(s, 1) for kind, _, s in ev if kind == "heartbeat"] for n, ev in self.log_events.items()}
        self._judge_moves(logs)
        self._judge_reads(reads, task_execution, by_key, acts)
        self._lateness(tasks, task_execution, by_key, logs)
        self._cpu()
        events = [event for lines in logs.values() for _, event, _ in lines]
        result.guard_on_kill = sum(GUARD in event for event in events)
        result.on_kill_called = sum("cancelled by user action" in event for event in events)
        result.settings["moments"] = {k: round(v - self.moments["start"], 1) for k, v in self.moments.items()}

    def _triggerer_log_events(self) -> dict[str, list[tuple[str, float, float]]]:
        """Per triggerer, from its own log within the scenario: ("blocked" | "heartbeat", when, seconds)."""
        found: dict[str, list[tuple[str, float, float]]] = {}
        for name in self.cluster.triggerer_jobs:
            events = found[name] = []
            for line in self.cluster.deployment.log_text(name).splitlines():
                kind = "blocked" if "async thread was blocked for" in line else "heartbeat" if "Heartbeat recovered after" in line else None
                if kind is None:
                    continue
                hit = re.search(r"(?:blocked for|recovered after) ([0-9.]+) seconds", line)
                try:
                    when = timestamp(line.split(" ", 1)[0])
                except ValueError:
                    continue
                if hit and self.moments["start"] <= when:
                    events.append((kind, when, float(hit.group(1))))
        return found

    def _finished_real(self, execution: dict[str, Any] | None) -> float | None:
        finished = _when(execution.get("finish_date")) if execution else None
        return self.clock.real(finished) if finished is not None else None

    def _judge_reads(
        self,
        reads: dict[Key, list[tuple[float, str]]],
        task_execution: dict[TaskKey, Key],
        by_key: dict[Key, Any],
        acts: dict[tuple[Key, str], list[float]],
    ) -> None:
        """Reads per execution per interval, by which triggerer sent them (``X-Scale-Client``)."""
        result, interval, m = self.result, self.size.interval, self.moments
        jobs = self.cluster.triggerer_jobs
        label_of_job = {job: name for name, job in jobs.items()}
        watchers: dict[Key, set[str]] = defaultdict(set)  # who watched each execution before the loss (Airflow's assignment)
        for job, ids in self.snapshot.items():
            for trigger_id in ids:
                key = task_execution.get(self.snapshot_tasks[trigger_id])
                if key is not None:
                    watchers[key].add(label_of_job.get(job, str(job)) if job is not None else "unassigned")
        result.shared_across_triggerers = sum(1 for labels in watchers.values() if len(labels) > 1)
        triggerer_labels = set(jobs)
        windows = {
            "before the loss": (m["all deferred"] + interval, m["loss"], True),
            "after the takeover": (m["running"] + interval, m.get("window end", m["running"] + STEADY * interval), False),
        }
        for name, (start, end, before) in windows.items():
            span = end - start
            inside_all = {
                key: sorted(t for t, label in times if start <= t < end and label in triggerer_labels) for key, times in reads.items()
            }
            total = sum(len(v) for v in inside_all.values())
            result.requests_per_second[name] = round(total / span, 2) if span > 0 else 0.0
            per_execution, worst = [], 0
            for key, inside in inside_all.items():
                if not inside:
                    continue
                per_execution.append(len(inside) / (span / interval))
                bound = max(1, len(watchers.get(key, set()))) if before else 1
                j = 0
                for i, t in enumerate(inside):  # the most reads within any 0.9 interval (a poller shares younger reads)
                    while inside[j] < t - 0.9 * interval:
                        j += 1
                    worst = max(worst, i - j + 1)
                    if i - j + 1 > bound:
                        result.reads_over_bound += 1
                        if result.reads_over_bound <= 10:
                            result.notes.append(f"{name}: execution {key} read {i - j + 1} times within 0.9 interval (watched by {bound})")
            result.reads_per_execution_interval_max[name] = worst
            result.reads_per_execution_interval_mean[name] = round(statistics.fmean(per_execution), 3) if per_execution else 0.0
        result.ideal_per_second = round(self.size.executions / interval, 2)
        # the same triggerer reading the same execution twice within half an interval, at any time
        for key, times in reads.items():
            finished = self._finished_real(by_key.get(key))
            by_label: dict[str, list[float]] = defaultdict(list)
            for t, label in times:
                by_label[label].append(t)
            for label, moments in by_label.items():
                if label not in triggerer_labels:
                    continue
                moments.sort()
                if finished is not None:
                    after = [t for t in moments if t >= finished - 0.5]
                    j = 0
                    for i, t in enumerate(after):
                        while after[j] < t - 0.9 * interval:
                            j += 1
                        result.reads_at_end_max = max(result.reads_at_end_max, i - j + 1)
                for a, b in zip(moments, moments[1:], strict=False):
                    if b - a >= 0.5 * interval:
                        continue
                    if finished is not None and a >= finished - 0.5:
                        result.end_of_wait_rereads += 1
                    elif any(a - 1.0 <= t <= b + 1.0 for t in acts.get((key, label), [])):
                        result.act_reads += 1
                    elif any(k == "blocked" and s >= 1.0 and a - 1.0 <= at <= b + 1.0 for k, at, s in self.log_events.get(label, [])):
                        result.stall_reads += 1
                    else:
                        result.double_reads += 1
                        if result.double_reads <= 10:
                            result.notes.append(f"{label} read execution {key} twice {b - a:.2f} s apart at {b - m['start']:.1f} s")

    def _judge_moves(self, logs: dict[TaskKey, list[tuple[int, str, float]]]) -> None:
        """Triggers started on more triggerers than planned: the lost one's on the other, the rest where they were."""
        result = self.result
        lost = next((t.job_id for t in result.triggerers if t.lost), None)
        other = next((t.job_id for t in result.triggerers if not t.lost), None)
        holder = {task: job for job, ids in self.snapshot.items() for t in ids if (task := self.snapshot_tasks.get(t))}
        for task, lines in logs.items():
            if task not in holder:
                continue
            started = [job for job, event, _ in lines if event.endswith(" starting")]
            planned = [holder[task]] + ([other] if holder[task] == lost else [])
            if started != planned[: len(started)] or len(started) > len(planned):
                result.unplanned_moves += 1
                if result.unplanned_moves <= 5:
                    result.notes.append(f"{'/'.join(task)} started on triggerer jobs {started} (planned {planned})")

    def _lateness(
        self,
        tasks: dict[TaskKey, tuple[str, Any, Any]],
        task_execution: dict[TaskKey, Key],
        by_key: dict[Key, Any],
        logs: dict[TaskKey, list[tuple[int, str, float]]],
    ) -> None:
        """The run's end in Buddy (emulated clock, mapped to real time) -> the trigger's event -> the task's end in Airflow."""
        result = self.result
        total, seen, recorded, on_worker = [], [], [], []
        for task, key in task_execution.items():
            state, end, _ = tasks.get(task, ("missing", None, None))
            finished = self._finished_real(by_key.get(key))
            if finished is None or end is None or key[0] in (DOOMED_PIPELINE, GATE_PIPELINE):
                continue
            late = (_when(end) or 0.0) - finished
            fired = [at for _, event, at in logs.get(task, []) if event == "Trigger fired event"]
            zero = self.moments["start"]
            result.lateness_detail.append(
                {
                    "task": "/".join(task),
                    "execution": list(key),
                    "state": state,
                    "run ended": round(finished - zero, 2),
                    "event": round(fired[-1] - zero, 2) if fired else None,
                    "task ended": round((_when(end) or 0.0) - zero, 2),
                }
            )
            if state != "success":
                on_worker.append(late)
                continue
            total.append(late)
            if fired:
                seen.append(fired[-1] - finished)
                recorded.append((_when(end) or 0.0) - fired[-1])
        result.lateness_s = _stats(total)
        result.lateness_seen_s = _stats(seen)
        result.lateness_recorded_s = _stats(recorded)
        result.lateness_worker_s = _stats(on_worker)

    def _cpu(self) -> None:
        result, m, meter = self.result, self.moments, self.cluster.meter
        mb = 1024 * 1024
        for figures in result.triggerers:
            series = meter.series[figures.name]
            killed = figures.lost and self.how == "SIGKILL"
            end = m["loss"] if killed else m["all ended"]
            figures.cpu_seconds = round(series.cpu_seconds(m["start"] - 2, end + 1), 1)
            figures.cpu_cores_before = round(series.cpu_share(m["all deferred"], m["loss"]), 3)
            if not killed:
                figures.cpu_cores_takeover = round(series.cpu_share(m["loss"], m["running"] + 1), 3)
                figures.cpu_cores_after = round(series.cpu_share(m["running"], m.get("window end", m["running"])), 3)
                figures.cpu_cores_finishing = round(series.cpu_share(m["clock moved"], m["all ended"]), 3)
            figures.rss_idle_mb = round(series.rss_last(m["start"]) / mb, 1)
            figures.rss_before_mb = round(series.rss_last(m["loss"]) / mb, 1)
            figures.rss_peak_mb = round(series.rss_peak(m["start"] - 2, end + 1) / mb, 1)
            figures.rss_end_mb = round(series.rss_last(end + 1) / mb, 1)
        for name, series in meter.series.items():
            if name == MACHINE:
                phases = {
                    "scenario": (m["start"], m["all ended"]),
                    "until all deferred": (m["start"], m["all deferred"]),
                    "before the loss": (m["all deferred"], m["loss"]),
                    "takeover": (m["loss"], m["running"]),
                    "runs finishing": (m["clock moved"], m["all ended"]),
                }
                result.machine_cores = {k: round(series.cpu_share(a, b), 2) for k, (a, b) in phases.items()}
            elif not name.startswith("triggerer"):
                result.other_cpu[name] = round(series.cpu_share(m["start"], m["all ended"]), 3)
                result.other_cpu_finishing[name] = round(series.cpu_share(m["clock moved"], m["all ended"]), 3)


class TriggererKilled(Scenario):
    """SIGKILL the triggerer holding more triggers (its whole session at once: nothing of it runs its shutdown)."""

    how = "SIGKILL"

    def lose(self, lost: TriggererFigures, other: TriggererFigures) -> None:
        self.cluster.deployment.kill_component(lost.name)
        self.wait_takeover(lost, other)
        time.sleep(STEADY * self.size.interval)
        self.moments["window end"] = time.time()


class TriggererFrozen(Scenario):
    """
    SIGSTOP the triggerer holding more triggers (every process of its session), until Airflow has handed its triggers
    to the other one (its heartbeat is older than ``[triggerer] triggerer_health_check_threshold``), then SIGCONT:
    it finds its triggers gone and cancels its copies -- Airflow 3.3 then calls their ``on_kill``
    (apache/airflow#73454), which must not cancel anything in Buddy.
    """

    how = "SIGSTOP, then SIGCONT"
    after_resume = 10.0  # seconds watched after SIGCONT

    def _signal(self, name: str, sig: int) -> None:
        for pid in self.cluster.deployment.components[name]._session_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    def lose(self, lost: TriggererFigures, other: TriggererFigures) -> None:
        self._signal(lost.name, signal.SIGSTOP)
        try:
            self.wait_takeover(lost, other)
            time.sleep(STEADY * self.size.interval)
            self.moments["window end"] = time.time()
            self.gates_reached(lost)
        finally:
            self._signal(lost.name, signal.SIGCONT)
        self.moments["resumed"] = time.time()
        time.sleep(self.after_resume)
        self.cluster.deployment.wait_healthy(120, names=("triggerer",))
        stale = [r for r in self._requests() if r["time"] >= self.moments["resumed"] and _label(r) == lost.name]
        kinds = Counter(" ".join((r["method"], str((r.get("json") or {}).get("operation") or ""))).strip() for r in stale)
        self.result.notes.append(
            f"{lost.name} resumed after {self.moments['resumed'] - self.moments['loss']:.1f} s stopped; it sent {len(stale)} requests to "
            f"Buddy in the {self.after_resume:.0f} s after SIGCONT ({dict(kinds)})"
        )
        self.approve_gates()

    def gates_reached(self, lost: TriggererFigures) -> None:
        """While the lost triggerer is still stopped: the ``gate-early`` runs reach their gate, and the other triggerer
        ends their tasks there (``on_approval="succeed"``). The stopped one still holds its copies of those triggers."""
        gates = [p for p in self.plans if p.dag_id == "scale_gate"]
        if not gates:
            return
        on_lost = sum(1 for t in self.snapshot.get(lost.job_id, []) if self.snapshot_tasks[t][0] == "scale_gate")
        self.clock.advance(GATE_AT)

        def ended() -> bool:
            return all(self.api.task_states(p.dag_id, p.run_id).get("deploy") == "success" for p in gates)

        wait_until(ended, "the gate-early tasks ended at their gate by the other triggerer", 120, interval=1.0)
        self.moments["gates reached"] = time.time()
        self.result.notes.append(
            f"{len(gates)} gate-early tasks ended at their gate on the other triggerer while {lost.name} (holding {on_lost} of "
            f"them) was stopped"
        )

    def approve_gates(self) -> None:
        """A person approves the gate-early runs in Buddy (those still waiting: a cancelled one stays cancelled)."""
        for plan in self.plans:
            if plan.dag_id != "scale_gate":
                continue
            mark = marker(plan.dag_id, plan.run_id, "deploy")
            for execution in self.emulator.executions(PROJECT, GATE_PIPELINE):
                if _marker_of(execution) == mark and execution["status"] not in FINAL_BUDDY:
                    self.emulator.approve(PROJECT, GATE_PIPELINE, int(execution["id"]))


def _label(request: dict[str, Any]) -> str:
    return str((request.get("headers") or {}).get(LABEL_HEADER, "direct"))


def format_result(result: ScaleResult) -> str:
    """The figures as text (printed at the end of the session and kept in results.json)."""
    size = result.size
    lines = [f"== {result.name}: {size['waits']} waits on {size['executions']} executions, interval {size['interval']} s ({result.how})"]
    lines.append(
        f"DAG runs as expected: {result.dag_runs_as_expected}/{result.dag_runs}; tasks not as expected: {result.tasks_not_as_expected}"
    )
    for t in result.triggerers:
        lines.append(
            f"{t.name} (job {t.job_id}{', lost' if t.lost else ''}): held {t.held_before} before the loss"
            + ("" if t.lost else f", {t.held_after} after the takeover")
            + f"; {t.buddy_requests} requests to Buddy; CPU {t.cpu_seconds} s in all, cores {t.cpu_cores_before} before the loss"
            + (
                ""
                if t.lost
                else f", {t.cpu_cores_takeover} taking over, {t.cpu_cores_after} after, {t.cpu_cores_finishing} as runs finished"
            )
            + f"; RSS idle {t.rss_idle_mb} MB, before the loss {t.rss_before_mb}, peak {t.rss_peak_mb}, end {t.rss_end_mb}"
        )
    lines.append(
        f"takeover of {result.taken_over} triggers from {result.lost}: assigned {result.takeover_assigned_s} s, "
        f"all started on the other {result.takeover_running_s} s after the loss"
    )
    lines.append(
        f"duplicates {result.duplicates}, orphans {result.orphaned}, approvals twice {result.approvals_twice} (missing "
        f"{result.approvals_missing}, refused by Buddy {result.approvals_refused}), cancels twice {result.cancels_twice} "
        f"(missing {result.cancels_missing}, unwanted "
        f"{result.cancels_unwanted}); race-failed tries {result.race_failed_tries}, retried tasks {result.retried_tasks}; "
        f"on_kill called {result.on_kill_called}, guard ({GUARD}) {result.guard_on_kill}; triggers moved unplanned "
        f"{result.unplanned_moves}; event-loop blocks >= 1 s {result.stalls}; heartbeat gaps {result.heartbeat_gaps}"
    )
    lines.append(
        f"reads per execution per 0.9 interval: max {result.reads_per_execution_interval_max}; per interval, mean "
        f"{result.reads_per_execution_interval_mean}; over the bound {result.reads_over_bound}; double reads {result.double_reads}, "
        f"around its own approval/cancel {result.act_reads}, after an event-loop block {result.stall_reads}, "
        f"once the run ended {result.end_of_wait_rereads} (at most "
        f"{result.reads_at_end_max} within 0.9 interval); executions watched from both triggerers "
        f"{result.shared_across_triggerers}"
    )
    lines.append(f"requests/s {result.requests_per_second} vs ideal {result.ideal_per_second}; by client {result.requests_by_client}")
    lines.append(
        f"lateness run end -> task end (in the triggerer) {result.lateness_s}; of which run end -> trigger event "
        f"{result.lateness_seen_s}, event -> task end {result.lateness_recorded_s}; failures resumed on a worker {result.lateness_worker_s}"
    )
    lines.append(f"machine (busy cores of {os.cpu_count()}): {result.machine_cores}")
    lines.append(f"other components (cores): {result.other_cpu}; while the runs finish: {result.other_cpu_finishing}")
    lines.append(f"phases (s): {result.phases}")
    lines += [f"note: {n}" for n in result.notes[:15]]
    return "\n".join(lines)
