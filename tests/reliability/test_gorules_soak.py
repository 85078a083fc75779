"""
GoRules fault soak: many concurrent waits on GoRules BRMS deployment workflow runs, and a real DAG run, against
the emulator under the same seeded fault schedule as the Buddy soak (:mod:`tests.reliability.chaos`: 429 with
Retry-After, 5xx bursts, 502 after processing, dropped connections before and after processing, answers lost
to timeouts — the deploy POST's and the cancel POST's included —, slow answers, malformed bodies before and
after processing).

Counted and asserted: duplicate deploy runs (0), final states that differ from the emulator's truth (0), runs
a task reported that are not its own (0), waits that hang past their deadline (0), cancels that reached the
BRMS twice (0) or cancels of runs nobody asked to cancel (0). The totals (runs, requests, faults injected per
kind and survived, retries made) are printed at the end of the run.

Two parts, both through the provider's real code paths:

- the triggerer: hundreds of :class:`GoRulesRunTrigger` in one event loop, as Airflow's triggerer runs them,
  with the parameters the deploy operator (deferrable: cancel on timeout, with a comment) and the sensor give
  them: runs that complete, fail, are cancelled by someone in the BRMS, stop at a review (``on_approval``
  ``succeed``, ``fail``, or ``wait`` with a reviewer approving or rejecting in the BRMS mid-wait), deadlines
  with and without cancel; one in five restarted from ``serialize()`` mid-wait;
- the tasks: one DAG run in real Airflow (``dag.test``) with deploy operators (deferrable and in the worker,
  with and without Airflow retries, projects whose deploy answers the run, only its id, or nothing), sensors
  (deferrable and poke) and a cancel operator, while someone else deploys the same release in the BRMS and a
  reviewer answers one environment's reviews.

The emulator's GoRules ids are seeded (``seed_gorules_ids``), so the fault of each request — keyed by its path,
which holds run ids — is the same in every run. ``BUDDY_SOAK=1`` (``make soak``) scales both parts up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.operators import gorules as gorules_operators
from airflow_provider_buddy.operators.gorules import GoRulesCancelRunOperator, GoRulesDeployReleaseOperator
from airflow_provider_buddy.sensors.gorules import GoRulesRunSensor
from airflow_provider_buddy.testing import BuddyEmulator
from airflow_provider_buddy.testing.gorules.runs import REVIEWER, TOKEN_OWNER
from airflow_provider_buddy.triggers.gorules import GoRulesRunTrigger
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import TOKEN, WORKSPACE
from tests.reliability.chaos import CANCEL_POST, DEPLOY_POST, DROP_AFTER, MALFORMED_AFTER, SERVER_AFTER, Chaos, processed
from tests.reliability.chaos import TIMEOUT as TIMEOUT_LOST
from tests.reliability.conftest import report, scaled
from tests.reliability.soak_support import (
    EXTRA,
    POLL,
    SEED,
    SLACK,
    TIMEOUT,
    SecondChances,
    drain,
    fault_lines,
    kind_totals,
    wait_as_the_triggerer,
)

CONN_ID = "gorules_soak"
FAMILIES = ("GET", DEPLOY_POST, CANCEL_POST)
BUDGET = 60.0
"""The deadline of waits that are not about deadlines: far beyond how long their runs take."""

# Environments in emulated seconds (the emulator runs 20 of them per real second).
ENVIRONMENTS = [
    {"key": "dev", "name": "Development", "duration": 4},
    {"key": "qa", "name": "QA", "duration": 8},
    {"key": "staging", "name": "Staging", "review": True, "duration": 4},
    {"key": "uat", "name": "UAT", "review": True, "duration": 4},
    {"key": "production", "name": "Production", "review": True, "duration": 4},
    {"key": "broken", "name": "Broken", "duration": 4, "fails": True, "error": "S3 bucket rules-prod is not reachable"},
    {"key": "slow", "name": "Slow", "duration": 10**6},
]
LABEL = {env["key"]: f"{env['name']} ({env['key']})" for env in ENVIRONMENTS}
FINAL_EVENT = {"completed": "success", "failure": "failed", "cancelled": "cancelled"}
REVIEWER_DISPLAY = f"{REVIEWER['firstName']} {REVIEWER['lastName']} <{REVIEWER['email']}>"


@dataclass(frozen=True)
class SoakProject:
    """One emulated BRMS project: its id, environment ids by key, its release."""

    id: str
    env: dict[str, str]
    release_id: str

    def run_path(self, run_id: str) -> str:
        return f"/api/projects/{self.id}/runs/{run_id}"


@contextmanager
def brms_soak(
    monkeypatch: pytest.MonkeyPatch, deploy_answers: tuple[str, ...] = ("run",)
) -> Iterator[tuple[BuddyEmulator, Chaos, dict[str, SoakProject]]]:
    """A seeded emulator with one BRMS project per deploy answer shape, the fault schedule on, ``gorules_soak`` pointing at it."""
    chaos = Chaos(SEED, TIMEOUT)
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0) as emulator:
        emulator.seed_gorules_ids(SEED)
        projects = {}
        for answer in deploy_answers:
            created = emulator.add_gorules_project(f"soak {answer}", ENVIRONMENTS, deploy_answer=answer)
            release_id = emulator.add_release(created["id"], "Pricing rules", "2.0.0")
            projects[answer] = SoakProject(created["id"], created["environments"], release_id)
        connection = {"conn_type": "gorules", "host": emulator.url, "password": TOKEN, "extra": EXTRA}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
        chaos.install(emulator)
        try:
            yield emulator, chaos, projects
        finally:
            drain(emulator, chaos)


class Retries(SecondChances):
    """The GoRules soak's second chances: the shared ones, plus deploy runs found by listing and re-attaches."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        counts = self.counts
        deploy_release = GoRulesHook.deploy_release
        find_new_run = GoRulesDeployReleaseOperator._find_new_run
        lost: set[int] = set()

        def counting_deploy(hook: GoRulesHook, *args: Any, **kwargs: Any) -> Any:
            try:
                return deploy_release(hook, *args, **kwargs)
            except Exception:
                lost.add(id(hook))
                raise

        def counting_find(operator: GoRulesDeployReleaseOperator, *args: Any, **kwargs: Any) -> Any:
            found = find_new_run(operator, *args, **kwargs)
            was_lost = id(operator.hook) in lost
            lost.discard(id(operator.hook))
            if found is not None:
                counts[
                    "lost deploy answers recovered by marker" if was_lost else "deploy answers without the run, run found by marker"
                ] += 1
            return found

        monkeypatch.setattr(GoRulesHook, "deploy_release", counting_deploy)
        monkeypatch.setattr(GoRulesDeployReleaseOperator, "_find_new_run", counting_find)
        self.count(
            gorules_operators, "earlier_try_run", lambda found: None if found[0] is None else "retried tasks re-attached to their run"
        )


def processed_cancels(emulator: BuddyEmulator, chaos: Chaos) -> Counter[str]:
    """Cancel POSTs the BRMS processed, by run path."""
    return Counter(
        request.path.removesuffix("/cancel")
        for request, kind in chaos.pair(emulator.requests)
        if request.method == "POST" and request.path.endswith("/cancel") and processed(kind)
    )


def comment_of(run: dict[str, Any]) -> str:
    """The deploy comment the run shows (in its jobs' data)."""
    for job in run.get("jobs") or []:
        data = job.get("data")
        if isinstance(data, dict) and isinstance(data.get("comment"), str):
            return str(data["comment"])
    return ""


def pending(run: dict[str, Any]) -> list[str]:
    """The environments (keys) whose review is pending in the emulator."""
    return [job["environment"]["key"] for job in run["jobs"] if job["status"] == "waiting"]


# ---- the triggerer ---------------------------------------------------------------------------------------
# what each waiter is about, and how often it comes up
WAITER_KINDS = {
    "completed": 5,
    "failure": 2,
    "cancelled_in_brms": 2,
    "gate_succeed": 2,
    "gate_fail": 2,
    "reviewer_approves": 3,
    "reviewer_rejects": 1,
    "deadline": 2,
    "deadline_at_gate": 1,
}
ENVIRONMENTS_OF = {
    "completed": (["dev"], ["dev", "qa"]),
    "failure": (["dev", "broken"],),
    "cancelled_in_brms": (["slow"],),
    "gate_succeed": (["dev", "staging", "production"],),
    "gate_fail": (["production"],),
    "reviewer_approves": (["staging", "production"], ["dev", "uat"]),
    "reviewer_rejects": (["dev", "staging"],),
    "deadline": (["slow"], ["dev", "slow"]),
    "deadline_at_gate": (["staging"],),
}
POLICY_OF = {"gate_succeed": "succeed", "gate_fail": "fail"}
TRUTH_OF = {
    "completed": "completed",
    "failure": "failure",
    "cancelled_in_brms": "cancelled",
    "gate_succeed": "waiting",
    "gate_fail": "waiting",
    "reviewer_approves": "completed",
    "reviewer_rejects": "failure",
}
DEADLINES = ("deadline", "deadline_at_gate")


@dataclass
class Waiter:
    """One deferred wait: who deferred it, what it waits on, and how it ended."""

    index: int
    kind: str
    role: str  # "deploy operator" or "sensor": the trigger gets the parameters that task gives it
    environments: list[str]
    offset: float
    restart_after: float | None
    deadline: float
    run_id: str = ""
    end_time: float = 0.0
    event: dict[str, Any] | None = None
    finished_at: float | None = None
    hung: bool = False
    restarted: bool = False

    @property
    def cancel_comment(self) -> str:
        return f"soak waiter {self.index} passed its deadline"

    def trigger_kwargs(self, project: SoakProject) -> dict[str, Any]:
        operator = self.role == "deploy operator"
        return {
            "gorules_conn_id": CONN_ID,
            "project_id": project.id,
            "run_id": self.run_id,
            "poll_interval": POLL,
            "on_approval": POLICY_OF.get(self.kind, "wait"),
            "end_time": self.end_time,
            "cancel_on_kill": operator,
            "cancel_on_timeout": operator,
            "cancel_comment": self.cancel_comment if operator else None,
        }


def plan(count: int) -> list[Waiter]:
    rng = random.Random(f"gorules:{SEED}")
    kinds = list(WAITER_KINDS)
    weights = list(WAITER_KINDS.values())
    waiters = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        waiters.append(
            Waiter(
                index=index,
                kind=kind,
                role="deploy operator" if index % 2 == 0 else "sensor",
                environments=list(rng.choice(ENVIRONMENTS_OF[kind])),
                offset=rng.uniform(0.0, 3.0 + count / 150),  # waits keep arriving, as deferrals do
                restart_after=rng.uniform(0.2, 2.0) if rng.random() < 0.2 else None,
                deadline=rng.uniform(1.0, 2.5) if kind in DEADLINES else BUDGET,
            )
        )
    return waiters


async def person_in_brms(emulator: BuddyEmulator, project: SoakProject, waiter: Waiter, rng: random.Random) -> None:
    """Someone in the BRMS UI: reviews each pending job a little while after it appears, or cancels the run."""
    if waiter.kind == "cancelled_in_brms":
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        emulator.gorules.cancel_run(project.id, waiter.run_id, {"comment": f"pulled by Jane ({waiter.index})"}, by=REVIEWER)
        return
    approve = waiter.kind == "reviewer_approves"
    while True:
        view = emulator.gorules_run(project.id, waiter.run_id)
        if view["status"] in FINAL_EVENT:
            return
        for key in pending(view):
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            emulator.review_in_gorules(project.id, waiter.run_id, key, approve=approve, comment="ok" if approve else "thresholds wrong")
        await asyncio.sleep(0.05)


async def drive(emulator: BuddyEmulator, project: SoakProject, waiter: Waiter) -> None:
    """Start the run (as someone in the BRMS or an upstream deploy would), defer to a trigger, restart it if planned, await the event."""
    await asyncio.sleep(waiter.offset)
    waiter.run_id = emulator.start_gorules_run(project.id, project.release_id, waiter.environments, f"soak waiter {waiter.index}")["id"]
    waiter.end_time = time.time() + waiter.deadline
    person = None
    if waiter.kind in ("cancelled_in_brms", "reviewer_approves", "reviewer_rejects"):
        person = asyncio.create_task(person_in_brms(emulator, project, waiter, random.Random(f"{SEED}:{waiter.index}")))
    trigger = GoRulesRunTrigger(**waiter.trigger_kwargs(project))
    limit = waiter.end_time + SLACK
    try:
        await wait_as_the_triggerer(waiter, trigger, limit)
    finally:
        if person is not None:
            with contextlib.suppress(asyncio.CancelledError):
                if not person.done():
                    person.cancel()
                await person


def check_waiter(emulator: BuddyEmulator, project: SoakProject, waiter: Waiter, cancels: Counter[str]) -> list[str]:
    """What differs between the wait's event and the emulator's truth (empty when nothing does)."""
    view = emulator.gorules_run(project.id, waiter.run_id)
    event = waiter.event or {}
    status, truth = event.get("status"), view["status"]
    where = f"waiter {waiter.index} ({waiter.kind}, {waiter.role}, {'+'.join(waiter.environments)}, run {waiter.run_id})"
    problems = []
    if event.get("run_id") != waiter.run_id or event.get("project_id") != project.id:
        problems.append(f"{where}: event names run {event.get('run_id')!r} of project {event.get('project_id')!r}")
    sent = cancels[project.run_path(waiter.run_id)]
    operator = waiter.role == "deploy operator"
    if waiter.kind in DEADLINES:
        expected_truth = "cancelled" if operator else ("waiting" if waiter.kind == "deadline_at_gate" else "in_progress")
        expected_run_status = "cancelled" if operator else None
        if status != "timeout" or truth != expected_truth or event.get("run_status") != expected_run_status:
            problems.append(
                f"{where}: event {status!r}/{event.get('run_status')!r} ({event.get('message')}), emulator {truth}, "
                f"expected timeout/{expected_run_status} and {expected_truth}"
            )
        if operator and (view["cancelledComment"] != waiter.cancel_comment or (view["cancelledBy"] or {}).get("id") != TOKEN_OWNER["id"]):
            problems.append(f"{where}: cancelled by {view['cancelledBy']} with {view['cancelledComment']!r}, expected the trigger's cancel")
        if sent != (1 if operator else 0):
            problems.append(f"{where}: {sent} cancels reached the BRMS, expected {1 if operator else 0}")
        return problems
    if sent:
        problems.append(f"{where}: {sent} cancels reached the BRMS for a run nobody asked to cancel")
    if truth != TRUTH_OF[waiter.kind]:
        problems.append(f"{where}: the emulator's run is {truth}, the scenario makes it {TRUTH_OF[waiter.kind]} (a broken test)")
    if truth == "waiting":
        expected = "waiting_for_approval" if waiter.kind == "gate_succeed" else "failed"
        labels = [LABEL[key] for key in pending(view)]
        if (
            status != expected
            or event.get("run_status") != "waiting"
            or event.get("waits_for") != "approval"
            or event.get("waiting_environments") != labels
        ):
            problems.append(
                f"{where}: event {status!r}/{event.get('run_status')!r} waiting for {event.get('waiting_environments')}, "
                f"emulator waits for {labels}, expected {expected!r}"
            )
        return problems
    if status != FINAL_EVENT.get(truth) or event.get("run_status") != truth or event.get("waits_for") is not None:
        problems.append(f"{where}: event {status!r}/{event.get('run_status')!r} ({event.get('message')}), emulator {truth}")
    if truth == "cancelled" and event.get("cancelled_by") != REVIEWER_DISPLAY:
        problems.append(f"{where}: cancelled_by {event.get('cancelled_by')!r}, expected {REVIEWER_DISPLAY!r}")
    truth_jobs = [(job["environment"]["key"], job["status"], job["reviewedConclusion"]) for job in view["jobs"]]
    event_jobs = [(job["environment"], job["status"], job["reviewed_conclusion"]) for job in event.get("jobs") or []]
    if [(LABEL[key], s, c) for key, s, c in truth_jobs] != event_jobs:
        problems.append(f"{where}: event jobs {event_jobs}, emulator {truth_jobs}")
    return problems


async def test_trigger_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    waiters = plan(scaled(400, 4000))
    retries = Retries(monkeypatch)
    started = time.monotonic()
    with brms_soak(monkeypatch) as (emulator, chaos, projects):
        project = projects["run"]
        await asyncio.gather(*(drive(emulator, project, w) for w in waiters))
        elapsed = time.monotonic() - started
        cancels = processed_cancels(emulator, chaos)
        checked = {w.index: check_waiter(emulator, project, w, cancels) for w in waiters if not w.hung}
        mismatches = [p for problems in checked.values() for p in problems]
        hung = [w for w in waiters if w.hung]
        overshoot = max((w.finished_at - w.end_time for w in waiters if w.kind in DEADLINES and w.finished_at), default=0.0)
        bad_paths = {project.run_path(w.run_id) for w in waiters if w.hung or checked.get(w.index)}
        cancels_twice = sum(n - 1 for n in cancels.values() if n > 1)
        roles = Counter(w.role for w in waiters)
        kinds = {kind: sum(1 for w in waiters if w.kind == kind) for kind in WAITER_KINDS}
        lines = [
            f"seed {SEED}; {len(waiters)} concurrent waits on GoRules runs in one triggerer event loop "
            f"({roles['deploy operator']} deferred by deploy operators, {roles['sensor']} by sensors); {elapsed:.1f} s",
            "  waits by what they wait for: " + ", ".join(f"{k} {n}" for k, n in kinds.items()),
            f"  requests to the BRMS: {len(emulator.requests)} (cancel POSTs {len(emulator.requests_to('POST', '/cancel$'))}), "
            f"faults injected: {sum(1 for *_, k in chaos.decisions if k)}",
            *fault_lines(chaos, bad_paths, emulator, FAMILIES),
            "  retries made: "
            + ", ".join(f"{name} {n}" for name, n in sorted(retries.counts.items()))
            + f", triggers restarted from serialize() {sum(w.restarted for w in waiters)}",
            f"  duplicate runs 0 (this part deploys none), final states differing from the emulator {len(mismatches)}, "
            f"waits hanging past their deadline {len(hung)} (latest timeout event {overshoot:.2f} s after its deadline, "
            f"allowed {SLACK:.1f} s), cancels sent twice {cancels_twice}",
        ]
        report("GoRules fault soak: triggerer", lines)
        assert emulator.requests_to("POST", "/deploy$") == []
    assert mismatches == [] and hung == [] and cancels_twice == 0, "\n".join(
        [*mismatches[:20], *(f"waiter {w.index} hung" for w in hung[:10])]
    )
    assert sum(w.restarted for w in waiters) > 0 and all(kinds.values())
    # every fault kind reached the waits (how many of each depends on how many requests the machine's speed makes)
    assert all(count >= 1 for count in kind_totals(chaos).values()), kind_totals(chaos)
    # the cancels themselves met faults, and only the deadline waits of deploy operators cancelled
    assert sum(n for (label, family), n in chaos.injected().items() if family == CANCEL_POST) > 0
    assert sum(cancels.values()) == sum(1 for w in waiters if w.kind in DEADLINES and w.role == "deploy operator")


# ---- the tasks, in real Airflow --------------------------------------------------------------------------
@dataclass(frozen=True)
class Deploy:
    """
    One deploy task of the soak DAG.

    :param project: which project (by its deploy answer: ``run``, ``id``, ``empty``).
    :param env: the environment deployed to.
    :param expect: how its run plays out: ``completed``, ``waiting`` (stops at the review, task finishes with
        ``on_approval="succeed"``), ``review_required`` (``on_approval="fail"``), ``failure``, ``timeout``
        (``execution_timeout`` passes: the run is cancelled), ``started`` (``wait_for_completion=False``: the task
        returns the run's id at once).
    """

    project: str
    env: str
    expect: str
    deferrable: bool
    retries: int
    on_approval: str = "wait"

    @property
    def waits(self) -> bool:
        return self.expect != "started"


DEPLOYS = (
    Deploy("run", "dev", "completed", deferrable=True, retries=3),
    Deploy("run", "qa", "completed", deferrable=False, retries=3),
    Deploy("run", "staging", "waiting", deferrable=True, retries=3, on_approval="succeed"),
    Deploy("run", "staging", "waiting", deferrable=False, retries=3, on_approval="succeed"),  # the same release to the same environment
    Deploy("run", "uat", "completed", deferrable=True, retries=3),  # a reviewer approves it in the BRMS
    Deploy("run", "production", "review_required", deferrable=True, retries=1, on_approval="fail"),
    Deploy("run", "broken", "failure", deferrable=True, retries=0),
    Deploy("run", "slow", "timeout", deferrable=True, retries=0),  # the trigger's deadline cancels the run
    Deploy("run", "slow", "timeout", deferrable=False, retries=0),  # on_kill cancels the run
    Deploy("id", "dev", "completed", deferrable=True, retries=3),
    Deploy("empty", "qa", "completed", deferrable=False, retries=3),
    Deploy("run", "dev", "completed", deferrable=True, retries=0),
    Deploy("run", "qa", "completed", deferrable=False, retries=0),
    *(Deploy("run", env, "started", deferrable=False, retries=retries) for env in ("dev", "qa", "slow") for retries in (0, 2)),
)
TIMEOUT_TASK = timedelta(seconds=2)
# runs started elsewhere for the sensors: (environments, sensor's on_approval, deferrable)
SENSED = (
    (["dev"], "wait", True),
    (["dev", "broken"], "wait", False),
    (["staging"], "succeed", True),
    (["production"], "fail", False),
    (["dev", "qa"], "wait", False),
)


def deploys(count: int) -> list[Deploy]:
    return [DEPLOYS[i % len(DEPLOYS)] for i in range(count)]


def soak_dag(emulator: BuddyEmulator, projects: dict[str, SoakProject], specs: list[Deploy], sensors: int, cancels: int) -> DAG:
    main = projects["run"]
    with DAG(
        dag_id=f"gorules_soak_dag_{SEED}", schedule=None, start_date=datetime(2026, 1, 1), default_args={"retry_delay": timedelta(0)}
    ) as dag:
        for i, spec in enumerate(specs):
            project = projects[spec.project]
            deploy = GoRulesDeployReleaseOperator(
                task_id=f"deploy_{i}",
                gorules_conn_id=CONN_ID,
                project_id=project.id,
                release_id=project.release_id,
                environment_id=project.env[spec.env],
                comment=f"soak deploy {i}",
                on_approval=spec.on_approval,
                wait_for_completion=spec.waits,
                deferrable=spec.deferrable,
                poll_interval=POLL,
                retries=spec.retries,
                execution_timeout=TIMEOUT_TASK if spec.expect == "timeout" else timedelta(minutes=2),
            )
            if spec.expect == "completed" and i % 3 == 0:  # a sensor on the deploy's run, as a downstream task would
                deploy >> GoRulesRunSensor(
                    task_id=f"sense_deploy_{i}",
                    gorules_conn_id=CONN_ID,
                    project_id=project.id,
                    run_id=f"{{{{ ti.xcom_pull(task_ids='deploy_{i}', key='run_id') }}}}",
                    poke_interval=POLL,
                    timeout=120,
                    deferrable=i % 2 == 0,
                    retries=2,
                )

        @task(task_id="start_elsewhere")
        def start_elsewhere() -> list[str]:
            """Runs someone started in the BRMS UI, for the sensors to wait on and the cancel operators to cancel."""
            sensed = [SENSED[j % len(SENSED)][0] for j in range(sensors)]
            return [
                emulator.start_gorules_run(main.id, main.release_id, envs, f"elsewhere {n}")["id"]
                for n, envs in enumerate([*sensed, *(["slow"] for _ in range(cancels))])
            ]

        started = start_elsewhere()
        for j in range(sensors):
            _, on_approval, deferrable = SENSED[j % len(SENSED)]
            started >> GoRulesRunSensor(
                task_id=f"sense_{j}",
                gorules_conn_id=CONN_ID,
                project_id=main.id,
                run_id=f"{{{{ ti.xcom_pull(task_ids='start_elsewhere')[{j}] }}}}",
                on_approval=on_approval,
                poke_interval=POLL,
                timeout=120,
                deferrable=deferrable,
                retries=2,
            )
        for k in range(cancels):
            cancel = GoRulesCancelRunOperator(
                task_id=f"cancel_{k}",
                gorules_conn_id=CONN_ID,
                project_id=main.id,
                run_id=f"{{{{ ti.xcom_pull(task_ids='start_elsewhere')[{sensors + k}] }}}}",
                comment=f"soak cancel {k}",
                retries=3,
            )
            (
                started
                >> cancel
                >> GoRulesRunSensor(
                    task_id=f"sense_cancelled_{k}",
                    gorules_conn_id=CONN_ID,
                    project_id=main.id,
                    run_id=f"{{{{ ti.xcom_pull(task_ids='start_elsewhere')[{sensors + k}] }}}}",
                    poke_interval=POLL,
                    timeout=120,
                    deferrable=k % 2 == 0,
                    retries=2,
                )
            )
    return dag


@contextmanager
def people_in_brms(emulator: BuddyEmulator, project: SoakProject) -> Iterator[Counter[str]]:
    """While the DAG runs: a reviewer approves every pending UAT review, and someone else deploys the same release now and then."""
    stop = threading.Event()
    seen: Counter[str] = Counter()

    def reviewer() -> None:
        while not stop.wait(0.1):
            for run in emulator.gorules_runs(project.id):
                if "uat" in pending(run):
                    emulator.review_in_gorules(project.id, run["id"], "uat", comment="looks good")
                    seen["UAT reviews approved in the BRMS"] += 1

    def someone_else() -> None:
        n = 0
        while not stop.wait(1.5):
            envs = [("dev", "qa", "staging")[n % 3]]
            emulator.start_gorules_run(project.id, project.release_id, envs, "hotfix by hand")
            seen["runs someone else started meanwhile"] += 1
            n += 1

    threads = [threading.Thread(target=target, daemon=True) for target in (reviewer, someone_else)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


def check_deploy(
    i: int, spec: Deploy, project: SoakProject, emulator: BuddyEmulator, final: dict[str, str], reported: Any
) -> tuple[list[str], list[dict[str, Any]]]:
    """What differs between the deploy task's outcome and the emulator's truth, and the task's own runs."""
    mine = [run for run in emulator.gorules_runs(project.id) if comment_of(run).startswith(f"soak deploy {i} [airflow:")]
    mode = "deferrable" if spec.deferrable else "worker"
    where = f"deploy_{i} ({spec.expect}, {spec.env}, {mode}, retries {spec.retries}, answer {spec.project})"
    problems = []
    state = final[f"deploy_{i}"]
    statuses = [(run["id"], run["status"]) for run in mine]
    if reported is not None and reported not in [run["id"] for run in mine]:
        problems.append(f"{where}: reported run {reported}, which is not its own (its runs: {statuses})")
    if len(mine) > 1:
        problems.append(f"{where}: deployed {len(mine)} times: {statuses}")
    run = mine[0] if len(mine) == 1 else None
    if spec.expect == "started":
        truth = "success" if run is not None else "failed"
    elif spec.expect == "completed":
        truth = "success" if run is not None and run["status"] == "completed" else "failed"
    elif spec.expect == "waiting":
        truth = "success" if run is not None and run["status"] == "waiting" and pending(run) == [spec.env] else "failed"
    else:
        truth = "failed"
        wanted = {"review_required": "waiting", "failure": "failure", "timeout": "cancelled"}[spec.expect]
        if run is not None and run["status"] != wanted:
            problems.append(f"{where}: its run is {run['status']}, expected {wanted}")
        if run is not None and spec.expect == "timeout" and "[airflow:" not in (run["cancelledComment"] or ""):
            problems.append(f"{where}: its run was cancelled with {run['cancelledComment']!r}, not by the task")
    if state != truth or (run is not None and truth == "success" and reported != run["id"]):
        problems.append(f"{where}: {state}, reported {reported}, emulator {statuses}")
    return problems, mine


@pytest.mark.usefixtures("airflow_db")
def test_dag_soak(monkeypatch: pytest.MonkeyPatch) -> None:
    specs, sensors, cancels = deploys(scaled(len(DEPLOYS), 4 * len(DEPLOYS))), scaled(len(SENSED), 4 * len(SENSED)), scaled(1, 4)
    retries = Retries(monkeypatch)
    started = time.monotonic()
    with brms_soak(monkeypatch, ("run", "id", "empty")) as (emulator, chaos, projects):
        main = projects["run"]
        with people_in_brms(emulator, main) as people:
            dag_run = run_dag(soak_dag(emulator, projects, specs, sensors, cancels))
        elapsed = time.monotonic() - started
        final = states(dag_run)
        tries = {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}
        problems: list[str] = []
        duplicates = 0
        bad_paths: set[str] = set()
        timed_out: set[str] = set()
        for i, spec in enumerate(specs):
            project = projects[spec.project]
            found, mine = check_deploy(i, spec, project, emulator, final, xcom(dag_run, f"deploy_{i}", key="run_id"))
            duplicates += max(0, len(mine) - 1)
            problems += found
            if spec.expect == "timeout":
                timed_out.update(project.run_path(run["id"]) for run in mine)
            if found:
                bad_paths.update(project.run_path(run["id"]) for run in mine)
            sensor = f"sense_deploy_{i}"
            if sensor in final and final[f"deploy_{i}"] == "success":
                truth = "success" if mine and mine[0]["status"] == "completed" else "failed"
                if final[sensor] != truth:
                    problems.append(f"{sensor}: {final[sensor]}, emulator {[(r['id'], r['status']) for r in mine]}")
        elsewhere = xcom(dag_run, "start_elsewhere")
        for j in range(sensors):
            envs, on_approval, _ = SENSED[j % len(SENSED)]
            view = emulator.gorules_run(main.id, elsewhere[j])
            truth = "success" if view["status"] == "completed" or (view["status"] == "waiting" and on_approval == "succeed") else "failed"
            if final[f"sense_{j}"] != truth:
                problems.append(f"sense_{j} ({'+'.join(envs)}, {on_approval}): {final[f'sense_{j}']}, emulator {view['status']}")
                bad_paths.add(main.run_path(view["id"]))
        cancel_targets = set()
        for k in range(cancels):
            view = emulator.gorules_run(main.id, elsewhere[sensors + k])
            cancel_targets.add(main.run_path(view["id"]))
            if final[f"cancel_{k}"] != "success" or view["status"] != "cancelled" or view["cancelledComment"] != f"soak cancel {k}":
                problems.append(f"cancel_{k}: {final[f'cancel_{k}']}, emulator {view['status']} ({view['cancelledComment']!r})")
            if final[f"sense_cancelled_{k}"] != "failed":
                problems.append(f"sense_cancelled_{k}: {final[f'sense_cancelled_{k}']}, emulator {view['status']}")
        processed = processed_cancels(emulator, chaos)
        cancels_twice = sum(n - 1 for n in processed.values() if n > 1)
        stray_cancels = sorted(set(processed) - timed_out - cancel_targets)
        deploy_faults = Counter(label for (label, family), n in chaos.injected().items() for _ in range(n) if family == DEPLOY_POST)
        lines = [
            f"seed {SEED}; one DAG run in Airflow (dag.test): {len(specs)} deploy operators "
            f"({sum(s.deferrable for s in specs)} deferrable, {sum(s.retries > 0 for s in specs)} with retries), "
            f"{sum(1 for t in final if t.startswith('sense'))} sensors, "
            f"{cancels} cancel operator{'' if cancels == 1 else 's'}; {elapsed:.1f} s",
            f"  requests to the BRMS: {len(emulator.requests)} (deploy POSTs {len(emulator.requests_to('POST', '/deploy$'))}, "
            f"cancel POSTs {len(emulator.requests_to('POST', '/cancel$'))}), faults injected: {sum(1 for *_, k in chaos.decisions if k)}; "
            + ", ".join(f"{name} {n}" for name, n in sorted(people.items())),
            *fault_lines(chaos, bad_paths, emulator, FAMILIES),
            "  retries made: "
            + ", ".join(f"{name} {n}" for name, n in sorted(retries.counts.items()))
            + f", Airflow task retries {sum(n - 1 for t, n in tries.items() if final[t] == 'success')} (that a task then succeeded in; "
            f"{sum(n - 1 for t, n in tries.items() if final[t] != 'success')} more in tasks that ended failed)",
            f"  duplicate deploy runs {duplicates}, final states differing from the emulator {len(problems)}, "
            f"cancels sent twice {cancels_twice}, cancels of runs nobody asked to cancel {len(stray_cancels)}",
        ]
        report("GoRules fault soak: tasks in Airflow", lines)
    assert duplicates == 0 and problems == [] and cancels_twice == 0 and stray_cancels == [], "\n".join([*problems, *stray_cancels])
    # the deploy POST itself met every fault that hides whether the BRMS created the run
    assert all(deploy_faults[kind.label] > 0 for kind in (SERVER_AFTER, DROP_AFTER, TIMEOUT_LOST, MALFORMED_AFTER)), deploy_faults
