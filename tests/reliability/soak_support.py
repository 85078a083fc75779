"""What both soaks share: the emulated pipelines, the connection, counters of retries, and the ground-truth checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from airflow.triggers.base import BaseTrigger

from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.testing import BuddyEmulator
from airflow_provider_buddy.triggers._base import PollingTrigger
from airflow_provider_buddy.triggers.buddy import CANCEL_ATTEMPTS
from tests.conftest import TOKEN, WORKSPACE
from tests.reliability.chaos import DROP_AFTER, DROP_BEFORE, KINDS, RUN_POST, Chaos, processed

SEED = 20260207
PROJECT = "soak"
CONN_ID = "buddy_soak"
TIMEOUT = 1.0
EXTRA = {"timeout": TIMEOUT, "max_retries": 3, "retry_min_wait": 0.05, "retry_max_wait": 0.3, "retry_total_timeout": 6}
POLL = 0.2
SLACK = (EXTRA["retry_total_timeout"] + TIMEOUT) * (1 + 2 * CANCEL_ATTEMPTS) + CANCEL_ATTEMPTS * 1.0 + POLL
"""How late past its deadline a wait may end: one poll in flight, then the timeout's cancel — each of its
attempts a read and a CANCEL with all their retries, and a pause. Anything later is a wait hanging past its
deadline (the figures print how late the latest one really was)."""

OK, FAILS, CANCELLED, SKIPPED, GATES, GATES_ON_ACTION, ASK, LONG, QUICK = range(1, 10)
BUILD = {"type": "BUILD", "duration": 4}
GATE_ACTIONS = [
    {"id": 50, "name": "Build", **BUILD},
    {"id": 51, "name": "Approve staging", "type": "WAIT_FOR_APPLY"},
    {"id": 52, "name": "Deploy staging", **BUILD},
    {"id": 53, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 54, "name": "Deploy production", **BUILD},
]
FINAL_EVENT = {"SUCCESSFUL": "success", "FAILED": "failed", "TERMINATED": "cancelled", "SKIPPED": "skipped"}
APPROVALS = ("APPLY", "APPLY_VARIABLES")


def add_pipelines(emulator: BuddyEmulator) -> None:
    """Every way a run can play out: outcomes, gates shown on the execution or only on the action, a prompt, a long run."""
    one = [{"id": 10, "name": "Build", "type": "BUILD", "duration": 10}]
    emulator.add_pipeline(
        PROJECT,
        OK,
        "ok",
        actions=[
            *one,
            {"id": 11, "name": "Test", "type": "BUILD", "duration": 10, "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}]},
        ],
    )
    emulator.add_pipeline(
        PROJECT,
        FAILS,
        "fails",
        actions=[{"id": 20, "name": "Unit tests", "type": "BUILD", "duration": 10, "log": [f"pytest line {i}" for i in range(30)]}],
        outcome="FAILED",
        fail_action=20,
        error_message="3 tests failed",
    )
    emulator.add_pipeline(PROJECT, CANCELLED, "cancelled", actions=one, outcome="TERMINATED")
    emulator.add_pipeline(PROJECT, SKIPPED, "skipped", actions=one, outcome="SKIPPED")
    emulator.add_pipeline(PROJECT, GATES, "gates", actions=GATE_ACTIONS)
    emulator.add_pipeline(PROJECT, GATES_ON_ACTION, "gates-on-action", actions=GATE_ACTIONS, wait_shown_on="action")
    emulator.add_pipeline(
        PROJECT,
        ASK,
        "ask",
        actions=[
            {"id": 70, "name": "Build", **BUILD},
            {"id": 71, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]},
            {"id": 72, "name": "Publish", **BUILD},
        ],
    )
    emulator.add_pipeline(PROJECT, LONG, "long", actions=[{"id": 80, "name": "Deploy", "type": "BUILD", "duration": 10**6}])
    emulator.add_pipeline(PROJECT, QUICK, "quick", actions=[{"id": 90, "name": "Build", **BUILD}, {"id": 91, "name": "Test", **BUILD}])


@contextmanager
def soak_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[BuddyEmulator, Chaos]]:
    """A seeded emulator with the fault schedule on, and ``buddy_soak`` pointing at it."""
    chaos = Chaos(SEED, TIMEOUT)
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0) as emulator:
        add_pipelines(emulator)
        connection = {"conn_type": "buddy", "host": emulator.url, "login": WORKSPACE, "password": TOKEN, "extra": EXTRA}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
        chaos.install(emulator)
        try:
            yield emulator, chaos
        finally:
            drain(emulator, chaos)


def drain(emulator: BuddyEmulator, chaos: Chaos, timeout: float = 5.0) -> None:
    """Let the emulator finish answering requests held by slow/timeout faults (the clients gave up on them)."""
    emulator.clear_faults()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [r for r, kind in chaos.pair(emulator.requests) if r.status is None and kind not in (DROP_BEFORE, DROP_AFTER)]
        if not pending:
            return
        time.sleep(0.05)


class SecondChances:
    """Counts the second chances any part of the provider takes: requests re-sent by the retry policy, and
    failed polls a trigger waited out. Service soaks add their own counters (see :meth:`count`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        self._monkeypatch = monkeypatch
        counts = self.counts
        report_retry = HttpCore._report_retry

        def counting_report(core: HttpCore, call: Any) -> Any:
            report = report_retry(core, call)

            def wrapped(state: Any) -> None:
                counts[f"requests re-sent by the retry policy ({call.method})"] += 1
                report(state)

            return wrapped

        monkeypatch.setattr(HttpCore, "_report_retry", counting_report)
        self.count(PollingTrigger, "backoff", lambda _: "failed polls waited out by a trigger")

    def count(self, owner: Any, name: str, label: Any) -> None:
        """Wrap ``owner.name``: after each call, ``label(result)`` names what to count (None: nothing)."""
        original = getattr(owner, name)
        counts = self.counts

        def counting(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            what = label(result)
            if what is not None:
                counts[what] += 1
            return result

        self._monkeypatch.setattr(owner, name, counting)


class Retries(SecondChances):
    """The Buddy soak's second chances: the shared ones, plus run searches and retried tasks carrying on with their run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        self.count(
            BuddyRunPipelineOperator, "find_marked_run", lambda found: None if found is None else "lost run answers recovered by marker"
        )
        self.count(
            BuddyRunPipelineOperator,
            "_carry_on_with",
            lambda carried: None if carried is None else "retried tasks that carried on with their earlier try's run",
        )


def mutations(emulator: BuddyEmulator, chaos: Chaos) -> dict[str, list[tuple[Any, bool]]]:
    """PATCH requests by operation, each with whether Buddy processed it."""
    found: dict[str, list[tuple[Any, bool]]] = defaultdict(list)
    for request, kind in chaos.pair(emulator.requests):
        if request.method == "PATCH" and isinstance(request.json, dict):
            found[str(request.json.get("operation"))].append((request, processed(kind)))
    return found


def sent_twice(emulator: BuddyEmulator, chaos: Chaos) -> tuple[int, int, Counter[tuple[str, Any]]]:
    """(approvals processed more than once per gate, cancels processed more than once per execution, approvals per gate)."""
    by_operation = mutations(emulator, chaos)
    approvals: Counter[tuple[str, Any]] = Counter()
    for operation in APPROVALS:
        for request, was_processed in by_operation.get(operation, []):
            if was_processed:
                approvals[(request.path, request.json.get("approve_action_id"))] += 1
    cancels: Counter[str] = Counter(request.path for request, was_processed in by_operation.get("CANCEL", []) if was_processed)
    return sum(n - 1 for n in approvals.values()), sum(n - 1 for n in cancels.values()), approvals


def fault_lines(
    chaos: Chaos,
    failed_paths: set[str] | None = None,
    emulator: BuddyEmulator | None = None,
    families: Sequence[str] = ("GET", RUN_POST, "PATCH"),
) -> list[str]:
    """One line per fault kind: how many were injected (by request family, in ``families``' order) and how many the waits survived."""
    injected = chaos.injected()
    lost: Counter[str] = Counter()
    if failed_paths and emulator is not None:
        for request, kind in chaos.pair(emulator.requests):
            if kind is not None and any(request.path.startswith(p) for p in failed_paths):
                lost[kind.label] += 1
    lines = []
    for kind in KINDS:
        by_family = {f: injected[(kind.label, f)] for f in families if injected[(kind.label, f)]}
        total = sum(by_family.values())
        detail = ", ".join(f"{f} {n}" for f, n in by_family.items())
        lines.append(f"  {kind.label:<38} injected {total:>5}  survived {total - lost[kind.label]:>5}  ({detail})")
    return lines


def kind_totals(chaos: Chaos) -> dict[str, int]:
    """Faults injected per kind, all families together."""
    injected = chaos.injected()
    return {kind.label: sum(n for (label, _), n in injected.items() if label == kind.label) for kind in KINDS}


# ---- a trigger run as the triggerer runs it --------------------------------------------------------------
RESTART_GAP = 1.0
"""A restarted trigger starts this long after the old one was cancelled (a real triggerer takes over only
after the old one's heartbeat expired): longer than any request the old one can leave in flight (slow
answers hold a request at most 0.6 s before processing it)."""

TriggerT = TypeVar("TriggerT", bound=BaseTrigger)


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def rebuilt(trigger: TriggerT) -> TriggerT:
    """A new trigger from ``serialize()``, through JSON, as the triggerer builds it from the database."""
    classpath, kwargs = trigger.serialize()
    cls = type(trigger)
    assert classpath == f"{cls.__module__}.{cls.__qualname__}"
    return cls(**json.loads(json.dumps(kwargs)))


async def wait_as_the_triggerer(waiter: Any, trigger: BaseTrigger, limit: float) -> None:
    """
    Run ``trigger`` to its event, by ``limit`` (epoch seconds). With ``waiter.restart_after`` set, the triggerer
    shuts down then (the trigger's task is cancelled, ``cleanup()`` runs) and another one takes over with a
    trigger rebuilt from ``serialize()``. Sets ``waiter.event``, ``restarted``, ``finished_at`` and ``hung``.
    """
    try:
        if waiter.restart_after is not None:
            running = asyncio.create_task(first_event(trigger))
            done, _ = await asyncio.wait({running}, timeout=waiter.restart_after)
            if running in done:
                waiter.event = running.result()
            else:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                await trigger.cleanup()
                waiter.restarted = True
                await asyncio.sleep(RESTART_GAP)
                trigger = rebuilt(trigger)
        if waiter.event is None:
            waiter.event = await asyncio.wait_for(first_event(trigger), max(0.1, limit - time.time()))
        waiter.finished_at = time.time()
    except TimeoutError:
        waiter.hung = True
