"""
Fault soak: many concurrent waits, and real DAG runs, against the emulator under a seeded fault schedule
(429 with Retry-After, 5xx bursts, 502 after processing, dropped connections before and after processing,
answers lost to timeouts — the run POST's included —, slow answers, malformed bodies before and after
processing; see :mod:`tests.reliability.chaos`).

Counted and asserted: duplicate Buddy executions (0), final states that differ from the emulator's truth (0),
waits that hang past their deadline (0), approvals (and cancels) that reached Buddy twice (0). The totals
(runs, requests, faults injected per kind and survived, retries made) are printed at the end of the run.

Two parts, both through the provider's real code paths:

- the triggerer: hundreds of :class:`BuddyExecutionTrigger` in one event loop, as Airflow's triggerer runs
  them, with the parameters the run operator (deferrable) and the sensor give them, some restarted from
  ``serialize()`` mid-wait;
- the tasks: one DAG run in real Airflow (``dag.test``) with run operators (most deferrable, the rest waiting
  in the worker; some approving gates, some with encrypted answers the worker gives) and sensors (deferrable
  and poke), Airflow retries on.

``BUDDY_SOAK=1`` (``make soak``) scales both up.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.testing.buddy.runs import BUDDY_USER_ID, TOKEN_OWNER_ID
from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger
from tests.airflow_support import run_dag, states, xcom
from tests.reliability.conftest import report, scaled
from tests.reliability.soak_support import (
    ASK,
    CANCELLED,
    CONN_ID,
    FAILS,
    FINAL_EVENT,
    GATES,
    GATES_ON_ACTION,
    LONG,
    OK,
    POLL,
    PROJECT,
    QUICK,
    SEED,
    SKIPPED,
    SLACK,
    Retries,
    fault_lines,
    kind_totals,
    sent_twice,
    soak_emulator,
    wait_as_the_triggerer,
)

BUDGET = 60.0
"""The deadline of waits that are not about deadlines: far beyond how long their runs take."""

# what each waiter is about, and how often it comes up
WAITER_KINDS = {
    "success": 6,
    "failure": 3,
    "cancelled": 2,
    "skipped": 1,
    "skipped_is_success": 1,
    "approve_gates": 3,
    "approve_gates_on_action": 3,
    "approve_variables": 2,
    "stop_at_gate": 2,
    "person_approves": 2,
    "deadline": 3,
}
PIPELINE_OF = {
    "success": OK,
    "failure": FAILS,
    "cancelled": CANCELLED,
    "skipped": SKIPPED,
    "skipped_is_success": SKIPPED,
    "approve_gates": GATES,
    "approve_gates_on_action": GATES_ON_ACTION,
    "approve_variables": ASK,
    "stop_at_gate": GATES_ON_ACTION,
    "person_approves": GATES,
    "deadline": LONG,
}


@dataclass
class Waiter:
    """One deferred wait: who deferred it, what it waits on, and how it ended."""

    index: int
    kind: str
    role: str  # "run operator" or "sensor": the trigger gets the parameters that task gives it
    offset: float
    restart_after: float | None
    deadline: float
    execution_id: int = 0
    end_time: float = 0.0
    event: dict[str, Any] | None = None
    finished_at: float | None = None
    hung: bool = False
    restarted: bool = False

    @property
    def pipeline_id(self) -> int:
        return PIPELINE_OF[self.kind]

    def trigger_kwargs(self) -> dict[str, Any]:
        operator = self.role == "run operator"
        kwargs: dict[str, Any] = {
            "buddy_conn_id": CONN_ID,
            "project_name": PROJECT,
            "pipeline_id": self.pipeline_id,
            "execution_id": self.execution_id,
            "poll_interval": POLL,
            "end_time": self.end_time,
            "cancel_on_kill": operator,
            "cancel_on_timeout": operator,
            "log_tail": 5,
            "skipped_is_success": self.kind == "skipped_is_success",
            "on_approval": {"stop_at_gate": "succeed", "person_approves": "wait"}.get(self.kind, "approve"),
        }
        if self.kind == "approve_variables":
            kwargs["approval_variables"] = {"NOTES": f"release notes {self.index}"}
        return kwargs


def plan(count: int) -> list[Waiter]:
    rng = random.Random(SEED)
    kinds = list(WAITER_KINDS)
    weights = list(WAITER_KINDS.values())
    waiters = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        waiters.append(
            Waiter(
                index=index,
                kind=kind,
                role="run operator" if index % 2 == 0 else "sensor",
                offset=rng.uniform(0.0, 3.0 + count / 150),  # waits keep arriving, as deferrals do
                restart_after=rng.uniform(0.2, 2.0) if rng.random() < 0.2 else None,
                deadline=rng.uniform(1.0, 2.5) if kind == "deadline" else BUDGET,
            )
        )
    return waiters


async def person_in_buddy(emulator: BuddyEmulator, waiter: Waiter, rng: random.Random) -> None:
    """Someone approves each gate in Buddy's UI a little while after it appears."""
    while True:
        view = emulator.execution(PROJECT, waiter.pipeline_id, waiter.execution_id)
        if view["status"] in FINAL_EVENT:
            return
        if any(a["status"] == "WAITING_FOR_APPLY" for a in view["action_executions"]):
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            emulator.approve_in_buddy(PROJECT, waiter.pipeline_id, waiter.execution_id)
        await asyncio.sleep(0.05)


async def drive(emulator: BuddyEmulator, waiter: Waiter) -> None:
    """Start the run (as Buddy or an upstream task would), defer to a trigger, restart it if planned, await the event."""
    await asyncio.sleep(waiter.offset)
    waiter.execution_id = int(emulator.start_execution(PROJECT, waiter.pipeline_id)["id"])
    waiter.end_time = time.time() + waiter.deadline
    person = None
    if waiter.kind == "person_approves":
        person = asyncio.create_task(person_in_buddy(emulator, waiter, random.Random(SEED + waiter.index)))
    trigger = BuddyExecutionTrigger(**waiter.trigger_kwargs())
    limit = waiter.end_time + SLACK
    try:
        await wait_as_the_triggerer(waiter, trigger, limit)
    finally:
        if person is not None:
            person.cancel()


def _path(waiter: Waiter) -> str:
    return f"/workspaces/acme/projects/{PROJECT}/pipelines/{waiter.pipeline_id}/executions/{waiter.execution_id}"


def check_waiter(emulator: BuddyEmulator, waiter: Waiter, approvals: Any) -> list[str]:
    """What differs between the wait's event and the emulator's truth (empty when nothing does)."""
    view = emulator.execution(PROJECT, waiter.pipeline_id, waiter.execution_id)
    event = waiter.event or {}
    status, truth = event.get("status"), view["status"]
    where = f"waiter {waiter.index} ({waiter.kind}, {waiter.role}, execution {waiter.execution_id})"
    problems = []
    gates = [a for a in view["action_executions"] if a["action"]["type"] in ("WAIT_FOR_APPLY", "WAIT_FOR_VARIABLES")]
    if waiter.kind == "deadline":
        expected_truth = "TERMINATED" if waiter.role == "run operator" else "INPROGRESS"
        if status != "timeout" or truth != expected_truth:
            problems.append(f"{where}: event {status!r} ({event.get('message')}), emulator {truth}, expected timeout and {expected_truth}")
    elif waiter.kind == "stop_at_gate":
        waiting = [a["action_execution_id"] for a in gates if a["status"].startswith("WAITING_FOR")]
        if status != "waiting_for_approval" or waiting != [event.get("waiting_action_execution_id")]:
            problems.append(f"{where}: event {status!r} at {event.get('waiting_action_execution_id')}, emulator waits at {waiting}")
        if any(approvals[(_path(waiter), gate["action_execution_id"])] for gate in gates):
            problems.append(f"{where}: approved although on_approval='succeed'")
    else:
        expected = FINAL_EVENT.get(truth)
        if waiter.kind == "skipped_is_success" and truth == "SKIPPED":
            expected = "success"
        if status != expected or event.get("execution_status") != truth:
            problems.append(f"{where}: event {status!r}/{event.get('execution_status')!r} ({event.get('message')}), emulator {truth}")
        if waiter.kind == "failure" and event.get("failed_action") != "Unit tests":
            problems.append(f"{where}: failed_action {event.get('failed_action')!r}")
        approver = BUDDY_USER_ID if waiter.kind == "person_approves" else TOKEN_OWNER_ID
        for gate in gates:
            if gate.get("approver_id") != approver:
                problems.append(f"{where}: gate {gate['action']['name']!r} approved by {gate.get('approver_id')}, expected {approver}")
            sent = approvals[(_path(waiter), gate["action_execution_id"])]
            if sent != (0 if waiter.kind == "person_approves" else 1):
                problems.append(f"{where}: gate {gate['action']['name']!r} got {sent} approvals from the provider")
    return problems


async def test_trigger_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    waiters = plan(scaled(400, 5000))
    retries = Retries(monkeypatch)
    started = time.monotonic()
    with soak_emulator(monkeypatch) as (emulator, chaos):
        await asyncio.gather(*(drive(emulator, w) for w in waiters))
        elapsed = time.monotonic() - started
        approvals_twice, cancels_twice, approvals = sent_twice(emulator, chaos)
        mismatches = [p for w in waiters if not w.hung for p in check_waiter(emulator, w, approvals)]
        hung = [w for w in waiters if w.hung]
        overshoot = max((w.finished_at - w.end_time for w in waiters if w.kind == "deadline" and w.finished_at), default=0.0)
        bad_paths = {_path(w) for w in waiters if w.hung or check_waiter(emulator, w, approvals)}
        roles = {role: sum(1 for w in waiters if w.role == role) for role in ("run operator", "sensor")}
        kinds = {kind: sum(1 for w in waiters if w.kind == kind) for kind in WAITER_KINDS}
        requests = len(emulator.requests)
        lines = [
            f"seed {SEED}; {len(waiters)} concurrent waits in one triggerer event loop "
            f"({roles['run operator']} deferred by run operators, {roles['sensor']} by sensors); {elapsed:.1f} s",
            "  waits by what they wait for: " + ", ".join(f"{k} {n}" for k, n in kinds.items()),
            f"  requests to Buddy: {requests} (POST {len(emulator.requests_to('POST', '.'))}, "
            f"PATCH {len(emulator.requests_to('PATCH', '.'))}), faults injected: {sum(1 for *_, k in chaos.decisions if k)}",
            *fault_lines(chaos, bad_paths, emulator),
            "  retries made: "
            + ", ".join(f"{name} {n}" for name, n in sorted(retries.counts.items()))
            + f", triggers restarted from serialize() {sum(w.restarted for w in waiters)}",
            f"  duplicate executions 0 (this part starts none), final states differing from the emulator {len(mismatches)}, "
            f"waits hanging past their deadline {len(hung)} (latest timeout event {overshoot:.2f} s after its deadline, "
            f"allowed {SLACK:.1f} s), approvals sent twice {approvals_twice}, cancels sent twice {cancels_twice}",
        ]
        report("Fault soak: triggerer", lines)
        assert emulator.requests_to("POST", ".") == []
    assert mismatches == [] and hung == [] and approvals_twice == 0 and cancels_twice == 0, mismatches[:10]
    assert sum(w.restarted for w in waiters) > 0 and all(kinds.values())
    # every kind of fault was injected, many times over
    assert all(count >= 3 for count in kind_totals(chaos).values()), kind_totals(chaos)


# ---- the tasks, in real Airflow ------------------------------------------------------------------------
SENSED = (OK, FAILS, CANCELLED, SKIPPED)


def soak_dag(emulator: BuddyEmulator, runs: int, sensors: int) -> DAG:
    with DAG(
        dag_id=f"soak_dag_{SEED}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": 6, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        for i in range(runs):
            options: dict[str, Any] = {"pipeline_id": QUICK}
            if i % 4 == 1:
                options = {"pipeline_id": GATES_ON_ACTION, "on_approval": "approve"}
            elif i % 4 == 3:  # encrypted answers stay on the worker: the trigger stops at the gate, the worker answers
                options = {
                    "pipeline_id": ASK,
                    "on_approval": "approve",
                    "approval_variables": [{"key": "NOTES", "value": f"notes {i}", "encrypted": True}],
                }
            BuddyRunPipelineOperator(
                task_id=f"run_{i}",
                buddy_conn_id=CONN_ID,
                project_name=PROJECT,
                comment=f"soak run {i}",
                poll_interval=POLL,
                deferrable=i % 3 != 2,
                execution_timeout=timedelta(minutes=2),
                **options,
            )

        @task(task_id="start_elsewhere")
        def start_elsewhere() -> list[int]:
            """Runs someone started in Buddy, for the sensors to wait on."""
            return [int(emulator.start_execution(PROJECT, SENSED[j % len(SENSED)])["id"]) for j in range(sensors)]

        started = start_elsewhere()
        for j in range(sensors):
            started >> BuddyExecutionSensor(
                task_id=f"sense_{j}",
                buddy_conn_id=CONN_ID,
                project_name=PROJECT,
                pipeline_id=SENSED[j % len(SENSED)],
                execution_id=f"{{{{ ti.xcom_pull(task_ids='start_elsewhere')[{j}] }}}}",
                poke_interval=POLL,
                timeout=120,
                deferrable=j % 3 != 2,
                retries=3,
            )
    return dag


@pytest.mark.usefixtures("airflow_db")
def test_dag_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    runs, sensors = scaled(10, 80), scaled(8, 40)
    retries = Retries(monkeypatch)
    started = time.monotonic()
    with soak_emulator(monkeypatch) as (emulator, chaos):
        dag_run = run_dag(soak_dag(emulator, runs, sensors))
        elapsed = time.monotonic() - started
        final = states(dag_run)
        tries = {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}
        problems: list[str] = []
        duplicates = 0
        bad_paths: set[str] = set()
        for i in range(runs):
            pipeline_id = GATES_ON_ACTION if i % 4 == 1 else ASK if i % 4 == 3 else QUICK
            mine = [e for e in emulator.executions(PROJECT, pipeline_id) if e["comment"].startswith(f"soak run {i} [airflow:")]
            duplicates += max(0, len(mine) - 1)
            truth = "success" if mine and all(e["status"] == "SUCCESSFUL" for e in mine) else "failed"
            if final[f"run_{i}"] != truth or (truth == "success" and xcom(dag_run, f"run_{i}") != mine[0]["id"]):
                problems.append(f"run_{i}: {final[f'run_{i}']}, emulator {[(e['id'], e['status']) for e in mine]}")
                bad_paths.update(f"/workspaces/acme/projects/{PROJECT}/pipelines/{pipeline_id}/executions/{e['id']}" for e in mine)
        sensed_ids = xcom(dag_run, "start_elsewhere")
        for j in range(sensors):
            view = emulator.execution(PROJECT, SENSED[j % len(SENSED)], sensed_ids[j])
            truth = "success" if view["status"] == "SUCCESSFUL" else "failed"
            if final[f"sense_{j}"] != truth:
                problems.append(f"sense_{j}: {final[f'sense_{j}']}, emulator {view['status']}")
                bad_paths.add(f"/workspaces/acme/projects/{PROJECT}/pipelines/{SENSED[j % len(SENSED)]}/executions/{view['id']}")
        approvals_twice, cancels_twice, _ = sent_twice(emulator, chaos)
        lines = [
            f"seed {SEED}; one DAG run in Airflow (dag.test): {runs} run operators "
            f"({sum(1 for i in range(runs) if i % 3 != 2)} deferrable, the others waiting in the worker; "
            f"{sum(1 for i in range(runs) if i % 4 in (1, 3))} approving gates), {sensors} sensors "
            f"({sum(1 for j in range(sensors) if j % 3 != 2)} deferrable, the others poking); {elapsed:.1f} s",
            f"  requests to Buddy: {len(emulator.requests)} (run POSTs {len(emulator.requests_to('POST', '.'))}, "
            f"PATCH {len(emulator.requests_to('PATCH', '.'))}), faults injected: {sum(1 for *_, k in chaos.decisions if k)}",
            *fault_lines(chaos, bad_paths, emulator),
            "  retries made: "
            + ", ".join(f"{name} {n}" for name, n in sorted(retries.counts.items()))
            + f", Airflow task retries {sum(n - 1 for t, n in tries.items() if final[t] == 'success')} (that a task then succeeded in; "
            f"{sum(n - 1 for t, n in tries.items() if final[t] != 'success')} more re-checked sensed runs that had failed)",
            f"  duplicate executions {duplicates}, final states differing from the emulator {len(problems)}, "
            f"approvals sent twice {approvals_twice}, cancels sent twice {cancels_twice}",
        ]
        report("Fault soak: tasks in Airflow", lines)
    assert duplicates == 0 and problems == [] and approvals_twice == 0 and cancels_twice == 0, problems
    assert sum(1 for *_, k in chaos.decisions if k) > 0


# ---- what the soak found, pinned down ------------------------------------------------------------------
ANSWERED = [
    {"id": 29, "name": "Build", "type": "BUILD", "duration": 6},  # the gate comes after the first look (and the deferral)
    {"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]},
    {"id": 31, "name": "Publish", "type": "BUILD", "duration": 0},
]


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
@pytest.mark.parametrize("deferrable", [False, True], ids=["worker", "deferrable"])
@pytest.mark.parametrize("when", ["after", "before"], ids=["applied", "not-applied"])
def test_a_failed_approval_neither_fails_the_task_nor_starts_another_run(emulator: BuddyEmulator, deferrable: bool, when: str) -> None:
    """The answer's PATCH gets a 5xx — after Buddy applied it, or before: look again, answer if still asked, finish."""
    emulator.add_pipeline("web", 3, "notes", actions=ANSWERED)
    emulator.add_fault(Fault(kind="status", status=502 if when == "after" else 500, method="PATCH", path=r"/executions/\d+$", when=when))
    with DAG(dag_id=f"lost_approval_{int(deferrable)}_{when}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=3,
            poll_interval=0.1,
            deferrable=deferrable,
            on_approval="approve",
            approval_variables=[{"key": "NOTES", "value": "ok", "encrypted": True}],
            retries=1,
            retry_delay=timedelta(0),
            execution_timeout=timedelta(seconds=30),
        )
    dag_run = run_dag(dag)
    (execution,) = emulator.executions("web", 3)
    assert states(dag_run) == {"run": "success"} and execution["status"] == "SUCCESSFUL"
    assert dag_run.get_task_instance("run").try_number == 1
    sent = emulator.requests_to("PATCH", ".")
    assert [r.json["operation"] for r in sent] == ["APPLY_VARIABLES"] * (1 if when == "after" else 2)


def add_fault_once_posted(emulator: BuddyEmulator, fault: Fault) -> None:
    deadline = time.monotonic() + 60
    while not emulator.requests_to("POST", r"/executions$") and time.monotonic() < deadline:
        time.sleep(0.005)
    emulator.add_fault(fault)


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_the_search_after_a_lost_run_answer_outlasts_transient_trouble(emulator: BuddyEmulator) -> None:
    """The run POST's answer is lost, then the search for the run hits a 5xx streak longer than the hook's retries."""
    emulator.add_pipeline("web", 9, "instant", actions=[{"id": 90, "name": "Noop", "type": "BUILD", "duration": 0}])
    # Buddy starts the run, holds the answer 2 s, then drops the connection; the outage starts once the POST is in
    # (the listing before the POST, which looks for an earlier try's run, must not meet it)
    emulator.add_fault(Fault(kind="drop", method="POST", path=r"/executions$", when="after", delay=2.0))
    outage = threading.Thread(
        target=add_fault_once_posted, args=(emulator, Fault(kind="status", status=503, method="GET", path=r"/executions$", times=5))
    )
    outage.start()
    with DAG(dag_id="lost_answer_outage", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(
            task_id="run",
            project_name="web",
            pipeline_id=9,
            poll_interval=0.1,
            reattach_on_retry=False,
            retries=1,
            retry_delay=timedelta(0),
        )
    dag_run = run_dag(dag)
    outage.join()
    assert emulator.faults == []  # all five 503s were met by the search
    (execution,) = emulator.executions("web", 9)
    assert states(dag_run) == {"run": "success"} and dag_run.get_task_instance("run").try_number == 1
    assert xcom(dag_run, "run") == execution["id"] and len(emulator.requests_to("POST", ".")) == 1
