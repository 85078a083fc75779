"""GoRulesRunTrigger against the emulator over real HTTP: outcomes, review gates and policies, faults,
permanent errors, deadline and kill with cancel, serialization, shared polling."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.triggers.gorules import GoRulesRunTrigger
from tests.conftest import TOKEN
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("gorules_conn")


def trigger(brms: Brms, run_id: str, **kwargs: Any) -> GoRulesRunTrigger:
    kwargs.setdefault("poll_interval", 0.05)
    return GoRulesRunTrigger(gorules_conn_id="gorules_default", project_id=brms.project_id, run_id=run_id, **kwargs)


async def first_event(trig: GoRulesRunTrigger, timeout: float = 15.0) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        events = [dict(event.payload) async for event in trig.run()]
        assert len(events) == 1, events
        return events[0]

    return await asyncio.wait_for(run(), timeout)


async def test_success_event_carries_what_the_task_needs(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("dev")
    event = await first_event(trigger(brms, run["id"]))
    assert event["status"] == "success" and event["run_status"] == "completed"
    assert event["run_id"] == run["id"] and event["project_id"] == brms.project_id and event["release_id"] == brms.release_id
    assert event["run_url"] == f"{emulator.url}/api/projects/{brms.project_id}/runs/{run['id']}"
    assert event["jobs"][0]["environment"] == "Development (dev)" and event["jobs"][0]["status"] == "completed"
    assert "end_time" in event and "Pricing rules 1.4.0" in event["message"]


async def test_failure_names_jobs_environments_and_reviewers(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("staging", "broken")
    emulator.review_in_gorules(brms.project_id, run["id"], "staging", comment="thresholds ok")
    event = await first_event(trigger(brms, run["id"]))
    message = event["message"]
    assert event["status"] == "failed" and event["run_status"] == "failure"
    assert (
        '1. Staging (staging): completed, reviewed by Jane Reviewer <jane@gorules-emulator.invalid> (approved: "thresholds ok")' in message
    )
    assert "2. Broken (broken): failure" in message


async def test_rejected_review_is_a_failure(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("staging")
    emulator.review_in_gorules(brms.project_id, run["id"], "staging", approve=False, comment="no")
    event = await first_event(trigger(brms, run["id"]))
    assert event["status"] == "failed" and '(rejected: "no")' in event["message"]


async def test_cancelled_event_says_who_and_why(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("slow")
    emulator.gorules.cancel_run(brms.project_id, run["id"], {"comment": "release pulled"})
    event = await first_event(trigger(brms, run["id"]))
    assert event["status"] == "cancelled" and event["cancelled_comment"] == "release pulled"
    assert 'by Emulator Bot <bot@gorules-emulator.invalid> ("release pulled")' in event["message"]


async def test_gate_succeed_reports_pending_environments(brms: Brms) -> None:
    run = brms.start("dev", "staging", "production")
    event = await first_event(trigger(brms, run["id"], on_approval="succeed"))
    assert event["status"] == "waiting_for_approval" and event["run_status"] == "waiting"
    assert event["waits_for"] == "approval" and event["waiting_environments"] == ["Staging (staging)"]


async def test_gate_fail_names_the_environment(brms: Brms) -> None:
    run = brms.start("production")
    event = await first_event(trigger(brms, run["id"], on_approval="fail"))
    assert event["status"] == "failed" and event["waits_for"] == "approval"
    assert "review of the deployment to Production (production)" in event["message"] and "BRMS UI" in event["message"]


async def test_gate_wait_waits_for_a_reviewer_in_the_brms(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("staging")
    task = asyncio.create_task(first_event(trigger(brms, run["id"])))
    await asyncio.sleep(0.5)
    assert not task.done()
    emulator.review_in_gorules(brms.project_id, run["id"], "staging")
    event = await task
    assert event["status"] == "success" and event["jobs"][0]["reviewed_conclusion"] == "approved"


def test_approve_is_refused_with_the_reason(brms: Brms) -> None:
    with pytest.raises(ValueError, match="no call to approve.*BRMS UI"):
        trigger(brms, "r", on_approval="approve")
    with pytest.raises(ValueError, match="must be one of"):
        trigger(brms, "r", on_approval="maybe")


async def test_faults_mid_wait_never_end_it(brms: Brms, emulator: BuddyEmulator) -> None:
    run = brms.start("dev")
    path = rf"/runs/{run['id']}$"
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "0"}, method="GET", path=path, times=4))
    emulator.add_fault(Fault(kind="status", status=502, method="GET", path=path, times=4))
    emulator.add_fault(Fault(kind="drop", method="GET", path=path, times=2))
    emulator.add_fault(Fault(kind="malformed", method="GET", path=path, times=2))
    event = await first_event(trigger(brms, run["id"]), timeout=30)
    assert event["status"] == "success"
    assert len([r for r in emulator.requests_to("GET", path) if r.fault]) == 12


@pytest.mark.parametrize("problem", ["token", "run"])
async def test_permanent_errors_end_with_an_error_event(brms: Brms, emulator: BuddyEmulator, problem: str) -> None:
    run_id = brms.start("slow")["id"] if problem == "token" else "no-such-run"
    if problem == "token":
        emulator.token = "rotated"
    event = await first_event(trigger(brms, run_id))
    assert event["status"] == "error" and event["error_kind"] == ("authentication" if problem == "token" else "not_found")
    assert event["run_id"] == run_id and event["project_id"] == brms.project_id
    assert TOKEN not in json.dumps(event)


async def test_deadline_leaves_going_or_cancels_with_comment(brms: Brms) -> None:
    run_id = brms.start("slow")["id"]
    event = await first_event(trigger(brms, run_id, end_time=time.time() + 0.3))
    assert event["status"] == "timeout" and "left going" in event["message"] and brms.run(run_id)["status"] == "in_progress"
    event = await first_event(trigger(brms, run_id, end_time=time.time() + 0.3, cancel_on_timeout=True, cancel_comment="too slow"))
    assert event["status"] == "timeout" and "cancelled GoRules run" in event["message"] and event["run_status"] == "cancelled"
    assert brms.run(run_id)["cancelledComment"] == "too slow" and [r.json for r in brms.cancels(run_id)] == [{"comment": "too slow"}]


async def test_on_kill_cancels_only_when_asked(brms: Brms) -> None:
    run_id = brms.start("slow")["id"]
    await trigger(brms, run_id).on_kill()
    assert brms.run(run_id)["status"] == "in_progress"
    await trigger(brms, run_id, cancel_on_kill=True).on_kill()
    assert brms.run(run_id)["status"] == "cancelled" and "Cancelled by Airflow" in brms.run(run_id)["cancelledComment"]
    await trigger(brms, run_id, cancel_on_kill=True).on_kill()  # already ended: no second cancel
    assert len(brms.cancels(run_id)) == 1


def test_serialize_round_trip_has_no_secret(brms: Brms) -> None:
    original = trigger(brms, "r-1", on_approval="succeed", end_time=123.0, cancel_on_kill=True, cancel_comment="c")
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_provider_buddy.triggers.gorules.GoRulesRunTrigger"
    text = json.dumps(kwargs)
    assert TOKEN not in text and "password" not in text
    assert GoRulesRunTrigger(**json.loads(text)).serialize() == (classpath, kwargs)


async def test_waiters_on_one_run_share_one_client_and_reads(brms: Brms, emulator: BuddyEmulator) -> None:
    run_id = brms.start("dev")["id"]  # 2 emulated s = 0.1 s real at speed 20
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        while True:
            seen.append(SharedPoller.for_running_loop().stats())
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    events = await asyncio.gather(*(first_event(trigger(brms, run_id, poll_interval=0.2)) for _ in range(8)))
    watcher.cancel()
    assert {e["status"] for e in events} == {"success"}
    assert max(s["clients"] for s in seen) == 1 and max(s["users"] for s in seen) == 8
    assert len(emulator.requests_to("GET", rf"/runs/{run_id}$")) <= 4


async def test_a_missing_connection_ends_with_an_error_event_not_a_crash(brms: Brms) -> None:
    event = await first_event(GoRulesRunTrigger(gorules_conn_id="no_such_conn", project_id=brms.project_id, run_id="r", poll_interval=0.05))
    assert event["status"] == "error" and "no_such_conn" in event["message"] and event["run_id"] == "r"


# ---- found by the GoRules fault soak (tests/reliability/test_gorules_soak.py), pinned down ---------------
@pytest.mark.parametrize(
    ("fault", "sent"),
    [
        (Fault(kind="drop", method="POST", path=r"/cancel$"), 2),  # never reached the BRMS: cancel again
        (Fault(kind="status", status=502, method="POST", path=r"/cancel$", when="after"), 1),  # applied, answer lost: never again
        (Fault(kind="drop", method="POST", path=r"/cancel$", when="after"), 1),
    ],
    ids=["dropped", "502-after-processing", "dropped-after-processing"],
)
async def test_the_deadline_cancel_outlasts_a_lost_cancel_answer(brms: Brms, emulator: BuddyEmulator, fault: Fault, sent: int) -> None:
    """The cancel at the deadline gets no usable answer: read the run again, cancel again only if the BRMS did not apply it,
    and report the run cancelled (it was left going, or reported as not cancelled, before)."""
    run_id = brms.start("slow")["id"]
    emulator.add_fault(fault)
    event = await first_event(trigger(brms, run_id, end_time=time.time() + 0.3, cancel_on_timeout=True, cancel_comment="too slow"))
    assert event["status"] == "timeout" and event["run_status"] == "cancelled" and "could not cancel" not in event["message"]
    assert brms.run(run_id)["status"] == "cancelled" and brms.run(run_id)["cancelledComment"] == "too slow"
    assert len(brms.cancels(run_id)) == sent
