"""BuddyExecutionTrigger against the emulator over real HTTP: outcomes, gates, policies, faults, restarts."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger
from tests.airflow_support import requires_triggerer_xcom_store
from tests.conftest import TOKEN, LogCapture
from tests.triggers.conftest import TriggererXComs, in_triggerer

pytestmark = pytest.mark.usefixtures("buddy_conn")
MAX_IN_FLIGHT_ENV = "AIRFLOW__BUDDY__TRIGGERER_MAX_IN_FLIGHT"

GATE = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 1},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Deploy production", "type": "BUILD", "duration": 1},
]
ASK = [{"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]}]
FAILING = [
    {"id": 40, "name": "Unit tests", "type": "BUILD", "duration": 1, "log": [f"test line {i}" for i in range(80)]},
]


def trigger(execution_id: int, pipeline_id: int = 1, **kwargs: Any) -> BuddyExecutionTrigger:
    return BuddyExecutionTrigger(
        buddy_conn_id="buddy_default", project_name="web", pipeline_id=pipeline_id, execution_id=execution_id, poll_interval=0.05, **kwargs
    )


async def first_event(trig: BuddyExecutionTrigger, timeout: float = 15.0) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trig.run():
            return dict(event.payload)
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(run(), timeout)


def patches(emulator: BuddyEmulator, execution_id: int) -> list[dict[str, Any]]:
    return [r.json for r in emulator.requests_to("PATCH", rf"/executions/{execution_id}$") if r.status == 200]


def reads(emulator: BuddyEmulator, execution_id: int) -> int:
    """How many reads of the execution the emulator has answered."""
    return sum(1 for r in emulator.requests_to("GET", rf"/executions/{execution_id}$") if r.status is not None)


async def test_success_event_carries_summary(emulator: BuddyEmulator) -> None:
    run = emulator.start_execution("web", 1)
    event = await first_event(trigger(run["id"]))
    assert event["status"] == "success" and event["execution_status"] == "SUCCESSFUL"
    assert event["execution_id"] == run["id"] and event["html_url"] == run["html_url"]
    assert event["outputted_variables"] == {"VERSION": "1.2.3"}


async def test_failure_event_names_action_error_and_log_tail(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web",
        pipeline_id=4,
        identifier="t",
        name="T",
        actions=FAILING,
        outcome="FAILED",
        fail_action=40,
        error_message="3 tests failed",
    )
    run = emulator.start_execution("web", 4)
    event = await first_event(trigger(run["id"], pipeline_id=4, log_tail=5))
    assert event["status"] == "failed" and event["failed_action"] == "Unit tests"
    assert event["error_message"] == "3 tests failed"
    assert len(event["log_tail"]) == 5 and event["log_tail"][0] != "test line 0"


@pytest.mark.parametrize(("outcome", "status"), [("TERMINATED", "cancelled"), ("SKIPPED", "skipped")])
async def test_cancelled_and_skipped(emulator: BuddyEmulator, outcome: str, status: str) -> None:
    emulator.add_pipeline(project="web", pipeline_id=5, identifier="o", name="O", actions=FAILING, outcome=outcome)
    run = emulator.start_execution("web", 5)
    event = await first_event(trigger(run["id"], pipeline_id=5))
    assert event["status"] == status and event["execution_status"] == outcome


async def test_skipped_is_success(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=5, identifier="o", name="O", actions=FAILING, outcome="SKIPPED")
    run = emulator.start_execution("web", 5)
    assert (await first_event(trigger(run["id"], pipeline_id=5, skipped_is_success=True)))["status"] == "success"


@pytest.mark.parametrize("shown_on", ["execution", "action"])
async def test_gate_succeed_policy_reports_what_waits(emulator: BuddyEmulator, shown_on: str) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on=shown_on)
    run = emulator.start_execution("web", 2)
    event = await first_event(trigger(run["id"], pipeline_id=2, on_approval="succeed"))
    assert event["status"] == "waiting_for_approval" and event["waits_for"] == "approval"
    assert event["waiting_action_name"] == "Approve production" and event["waiting_action_execution_id"]
    assert event["execution_status"] == ("WAITING_FOR_APPLY" if shown_on == "execution" else "INPROGRESS")


async def test_gate_fail_policy(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    event = await first_event(trigger(run["id"], pipeline_id=2, on_approval="fail"))
    assert event["status"] == "failed" and "'Approve production'" in event["message"]


async def test_gate_wait_policy_waits_for_a_person_in_buddy(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    emulator.advance(2)  # at the gate before the trigger's first look, however slow this machine is
    task = asyncio.create_task(first_event(trigger(run["id"], pipeline_id=2)))
    while not task.done() and reads(emulator, run["id"]) < 3:  # it saw the gate, and kept looking
        await asyncio.sleep(0.02)
    assert not task.done()
    emulator.approve_in_buddy("web", 2, run["id"])
    event = await task
    assert event["status"] == "success" and patches(emulator, run["id"]) == []


@pytest.mark.parametrize("shown_on", ["execution", "action"])
async def test_gate_approve_policy_applies_once(emulator: BuddyEmulator, shown_on: str) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on=shown_on)
    run = emulator.start_execution("web", 2)
    event = await first_event(trigger(run["id"], pipeline_id=2, on_approval="approve"))
    assert event["status"] == "success"
    sent = patches(emulator, run["id"])
    assert len(sent) == 1 and sent[0]["operation"] == "APPLY" and sent[0]["approve_action_id"]


async def test_gate_approve_policy_answers_variables(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="n", name="N", actions=ASK)
    run = emulator.start_execution("web", 3)
    event = await first_event(trigger(run["id"], pipeline_id=3, on_approval="approve", approval_variables={"NOTES": "all good"}))
    assert event["status"] == "success"
    assert [p["variables"] for p in patches(emulator, run["id"])] == [[{"key": "NOTES", "value": "all good"}]]


async def test_gate_approve_without_variables_for_a_prompt_is_an_error(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="n", name="N", actions=ASK)
    run = emulator.start_execution("web", 3)
    event = await first_event(trigger(run["id"], pipeline_id=3, on_approval="approve"))
    assert event["status"] == "error" and "approval_variables" in event["message"]
    assert patches(emulator, run["id"]) == []


def test_encrypted_approval_variables_are_refused() -> None:
    with pytest.raises(ValueError, match="encrypted"):
        trigger(1, approval_variables=[{"key": "PASS", "value": "x", "encrypted": True}])


async def test_faults_mid_wait_never_end_it(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    path = rf"/executions/{run['id']}$"
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "0"}, method="GET", path=path, times=12))
    emulator.add_fault(Fault(kind="status", status=502, method="GET", path=path, times=8))
    emulator.add_fault(Fault(kind="drop", method="GET", path=path, times=5))
    emulator.add_fault(Fault(kind="malformed", method="GET", path=path, times=3))
    event = await first_event(trigger(run["id"], pipeline_id=2, on_approval="approve"), timeout=30)
    assert event["status"] == "success"
    assert len(patches(emulator, run["id"])) == 1
    faulted = [r for r in emulator.requests_to("GET", path) if r.fault]
    assert len(faulted) == 28


async def test_messages_name_buddy_and_the_execution(emulator: BuddyEmulator, logs: LogCapture) -> None:
    """What a user reads in the triggerer's log names the service and the execution, not "the service"/"object"."""
    run = emulator.start_execution("web", 1)
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=rf"/executions/{run['id']}$", times=4))
    assert (await first_event(trigger(run["id"]), timeout=30))["status"] == "success"
    text = logs.text
    assert "Buddy is not answering well" in text and "Buddy answers again after" in text
    assert "the service" not in text and "object" not in text


async def test_an_approval_the_token_may_not_send_ends_the_wait(emulator: BuddyEmulator) -> None:
    """A 403 on the approval is a setting to fix: the wait ends with an error event instead of asking again every poll."""
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    emulator.scopes = {"WORKSPACE", "EXECUTION_INFO"}
    event = await first_event(trigger(run["id"], pipeline_id=2, on_approval="approve"))
    assert event["status"] == "error" and event["error_kind"] == "permission"
    assert len(emulator.requests_to("PATCH", rf"/executions/{run['id']}$")) == 1


def test_a_service_trigger_must_name_its_service_noun_and_hook() -> None:
    from airflow_provider_buddy.triggers._base import PollingTrigger

    with pytest.raises(TypeError, match="service, noun, hook_class"):

        class Forgetful(PollingTrigger):
            pass

    with pytest.raises(TypeError, match="hook_class"):

        class NoHook(PollingTrigger):
            service = "X"
            noun = "thing"


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda emu: setattr(emu, "token", "rotated-token"), "authentication"),
        (lambda emu: setattr(emu, "api_disabled", True), "permission"),
        (None, "not_found"),
    ],
)
async def test_permanent_errors_end_with_error_event(emulator: BuddyEmulator, setup: Any, kind: str) -> None:
    run = emulator.start_execution("web", 1)
    execution_id = run["id"] if setup else 9999
    if setup:
        setup(emulator)
    event = await first_event(trigger(execution_id))
    assert event["status"] == "error" and event["error_kind"] == kind
    assert TOKEN not in json.dumps(event)


async def test_end_time_gives_timeout_and_can_cancel(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=6, identifier="l", name="L", actions=[{"id": 1, "name": "Long", "type": "BUILD", "duration": 99999}]
    )
    run = emulator.start_execution("web", 6)
    event = await first_event(trigger(run["id"], pipeline_id=6, end_time=time.time() + 0.3))
    assert event["status"] == "timeout" and "the execution was left going" in event["message"]
    assert emulator.execution("web", 6, run["id"])["status"] == "INPROGRESS"
    event = await first_event(trigger(run["id"], pipeline_id=6, end_time=time.time() + 0.3, cancel_on_timeout=True))
    assert event["status"] == "timeout" and "cancelled" in event["message"]
    assert emulator.execution("web", 6, run["id"])["status"] == "TERMINATED"


async def test_on_kill_cancels_only_when_asked(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=6, identifier="l", name="L", actions=[{"id": 1, "name": "Long", "type": "BUILD", "duration": 99999}]
    )
    run = emulator.start_execution("web", 6)
    await trigger(run["id"], pipeline_id=6).on_kill()
    assert emulator.execution("web", 6, run["id"])["status"] == "INPROGRESS"
    await trigger(run["id"], pipeline_id=6, cancel_on_kill=True).on_kill()
    assert emulator.execution("web", 6, run["id"])["status"] == "TERMINATED"


def test_serialize_round_trip_has_no_secret() -> None:
    original = trigger(7, pipeline_id=2, workspace="acme", on_approval="approve", approval_variables={"NOTES": "x"}, end_time=123.0)
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_provider_buddy.triggers.buddy.BuddyExecutionTrigger"
    text = json.dumps(kwargs)
    assert TOKEN not in text and "password" not in text
    rebuilt = BuddyExecutionTrigger(**json.loads(text))
    assert rebuilt.serialize() == (classpath, kwargs)


async def test_restart_mid_wait_finishes_without_reapproving(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web",
        pipeline_id=2,
        identifier="d",
        name="D",
        actions=GATE + [{"id": 23, "name": "Approve again", "type": "WAIT_FOR_APPLY"}],
        wait_shown_on="action",
    )
    speed = emulator.speed
    emulator.speed = 0  # the clock stands still until the restart, so the first trigger can only ever reach the first gate
    run = emulator.start_execution("web", 2)
    emulator.advance(2)  # past "Deploy staging": at the first gate
    first = trigger(run["id"], pipeline_id=2, on_approval="approve")
    task = asyncio.create_task(first_event(first))
    while not task.done() and not patches(emulator, run["id"]):
        await asyncio.sleep(0.02)
    task.cancel()  # the triggerer shutting down
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(patches(emulator, run["id"])) == 1  # the first gate was approved before the restart
    emulator.speed = speed
    classpath, kwargs = first.serialize()
    event = await first_event(BuddyExecutionTrigger(**kwargs))
    assert event["status"] == "success"
    ids = [p["approve_action_id"] for p in patches(emulator, run["id"])]
    assert len(ids) == 2 and len(set(ids)) == 2  # two gates, each approved exactly once


async def test_ten_waiters_on_one_execution_share_requests(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=6, identifier="l", name="L", actions=[{"id": 1, "name": "Long", "type": "BUILD", "duration": 40}]
    )
    run = emulator.start_execution("web", 6)
    waiters = [
        BuddyExecutionTrigger(buddy_conn_id="buddy_default", project_name="web", pipeline_id=6, execution_id=run["id"], poll_interval=0.5)
        for _ in range(10)
    ]
    events = await asyncio.gather(*(first_event(w) for w in waiters))
    assert {e["status"] for e in events} == {"success"}
    gets = len(emulator.requests_to("GET", rf"/executions/{run['id']}$"))
    intervals = 40 / 20 / 0.5  # emulated duration / speed / poll interval
    assert gets <= intervals + 3, gets


async def test_one_pooled_client_per_connection(emulator: BuddyEmulator) -> None:
    speed = emulator.speed
    emulator.speed = 0  # the runs stay in progress until every trigger has read its own, however slow this machine is
    runs = [emulator.start_execution("web", 1)["id"] for _ in range(5)]
    seen: list[dict[str, Any]] = []
    waits = asyncio.gather(*(first_event(trigger(r)) for r in runs))
    while not waits.done() and not all(reads(emulator, r) for r in runs):
        seen.append(SharedPoller.for_running_loop().stats())
        await asyncio.sleep(0.02)
    seen.append(SharedPoller.for_running_loop().stats())  # all five wait now: none of the runs can have ended
    emulator.speed = speed
    while not waits.done():
        seen.append(SharedPoller.for_running_loop().stats())
        await asyncio.sleep(0.02)
    await waits
    assert max(s["clients"] for s in seen) == 1 and max(s["users"] for s in seen) == 5


async def test_reads_in_flight_are_capped_by_the_triggerers_setting(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """[buddy] triggerer_max_in_flight = 2: six triggers' reads, each answered after 0.3 s, go out two at a time."""
    monkeypatch.setenv(MAX_IN_FLIGHT_ENV, "2")
    emulator.add_pipeline(
        project="web", pipeline_id=6, identifier="quick", actions=[{"id": 1, "name": "Noop", "type": "BUILD", "duration": 0}]
    )
    runs = [emulator.start_execution("web", 6)["id"] for _ in range(6)]
    emulator.add_fault(Fault(kind="delay", delay=0.3, method="GET", path=r"/executions/\d+$", times=None))
    events = await asyncio.gather(*(first_event(trigger(run, pipeline_id=6)) for run in runs))
    assert [e["status"] for e in events] == ["success"] * 6
    arrivals = sorted(r.time for r in emulator.requests_to("GET", r"/executions/\d+$"))
    assert len(arrivals) == 6
    # a third read may only start when one of the first two was answered (a lower bound: a slow machine only widens it)
    assert all(later - earlier >= 0.25 for earlier, later in zip(arrivals, arrivals[2:], strict=False))


@pytest.mark.parametrize(("raw", "expected"), [(None, 10), ("32", 32), (" 1 ", 1)])
def test_max_in_flight_setting(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: int) -> None:
    from airflow_provider_buddy.triggers._poller import max_in_flight

    if raw is None:
        monkeypatch.delenv(MAX_IN_FLIGHT_ENV, raising=False)
    else:
        monkeypatch.setenv(MAX_IN_FLIGHT_ENV, raw)
    assert max_in_flight() == expected


@pytest.mark.parametrize("raw", ["0", "-3", "ten", "1001"])
def test_max_in_flight_setting_refuses_nonsense(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from airflow_provider_buddy.triggers._poller import max_in_flight

    monkeypatch.setenv(MAX_IN_FLIGHT_ENV, raw)
    with pytest.raises(ValueError, match=rf"\[buddy\] triggerer_max_in_flight must be a whole number from 1 to 1000, got '{raw.strip()}'"):
        max_in_flight()


async def raw_event(trig: BuddyExecutionTrigger, timeout: float = 15.0) -> Any:
    async def run() -> Any:
        async for event in trig.run():
            return event
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(run(), timeout)


@requires_triggerer_xcom_store()
@pytest.mark.parametrize(
    ("returns", "push", "expected_keys"),
    [("id", True, {"return_value", "summary"}), ("summary", True, {"return_value"}), ("id", False, {"summary"})],
    ids=["operator", "sensor", "operator-no-xcom-push"],
)
async def test_a_good_end_ends_the_task_in_the_triggerer(
    emulator: BuddyEmulator, triggerer_xcoms: TriggererXComs, returns: str, push: bool, expected_keys: set[str]
) -> None:
    """No worker is woken for a run that succeeded: the task ends with the XComs its execute_complete would push,
    stored as a worker stores them (a downstream task reads the summary back as a dict, the id as a number)."""
    from airflow.triggers.base import TaskSuccessEvent

    run = emulator.start_execution("web", 1)
    event = await raw_event(in_triggerer(trigger(run["id"], end_in_triggerer={"returns": returns, "push_return_value": push})))
    assert isinstance(event, TaskSuccessEvent) and not event.xcoms  # not through the event: Airflow re-encodes those
    xcoms = triggerer_xcoms.values()
    assert set(xcoms) == expected_keys | {"html_url", "_link_BuddyExecutionLink"}  # and the link
    assert {msg.task_id for msg in triggerer_xcoms.sent} == {"wait"}
    summary = xcoms.get("summary") or xcoms.get("return_value")
    assert summary["execution_id"] == run["id"] and summary["status"] == "SUCCESSFUL"
    assert summary["outputted_variables"] == {"VERSION": "1.2.3"}
    if returns == "id" and push:
        assert xcoms["return_value"] == run["id"]


async def test_a_task_nobody_downstream_reads_hands_its_xcoms_to_airflow_with_its_end(
    emulator: BuddyEmulator, triggerer_xcoms: TriggererXComs
) -> None:
    """No downstream task (so no reader but the UI and REST API, which decode Airflow's own encoding): the XComs go
    with the end event, one message instead of one per XCom; a task that started on a worker stored its link then."""
    from airflow.triggers.base import TaskSuccessEvent

    run = emulator.start_execution("web", 1)
    end = {"returns": "id", "push_return_value": True, "started_in_triggerer": False, "read_downstream": False}
    event = await raw_event(in_triggerer(trigger(run["id"], end_in_triggerer=end)))
    assert isinstance(event, TaskSuccessEvent) and triggerer_xcoms.sent == []
    assert set(event.xcoms or {}) == {"return_value", "summary"} and (event.xcoms or {})["return_value"] == run["id"]


def test_how_a_task_ends_follows_its_downstream_tasks_and_where_it_started() -> None:
    from airflow.sdk import DAG

    from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
    from airflow_provider_buddy.utils.deferral import trigger_ending

    with DAG(dag_id="ends", schedule=None):
        alone = BuddyRunPipelineOperator(task_id="alone", project_name="web", pipeline_id=1, deferrable=True)
        first = BuddyRunPipelineOperator(task_id="first", project_name="web", pipeline_id=1, deferrable=True)
        first >> BuddyRunPipelineOperator(task_id="then", project_name="web", pipeline_id=1, deferrable=True)
    ends = {task.task_id: trigger_ending(task, returns="id")["end_in_triggerer"] for task in (alone, first)}
    assert ends["alone"]["read_downstream"] is False and ends["first"]["read_downstream"] is True
    assert ends["alone"]["started_in_triggerer"] is False
    assert trigger_ending(alone, returns="id", started_in_triggerer=True)["end_in_triggerer"]["read_downstream"] is True


async def test_a_good_end_the_triggerer_cannot_store_resumes_a_worker(emulator: BuddyEmulator) -> None:
    """Where the trigger cannot store the task's XComs itself (no task instance here, an Airflow whose triggerer takes
    none), the task is not ended without them: a worker resumes it with the event and pushes them."""
    from airflow.triggers.base import TaskSuccessEvent

    run = emulator.start_execution("web", 1)
    event = await raw_event(trigger(run["id"], end_in_triggerer={"returns": "id", "push_return_value": True}))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == "success" and event.payload["execution_id"] == run["id"]


@requires_triggerer_xcom_store()
async def test_a_gate_that_ends_the_wait_ends_the_task_in_the_triggerer_too(
    emulator: BuddyEmulator, triggerer_xcoms: TriggererXComs
) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    emulator.add_pipeline(project="web", pipeline_id=2, identifier="d", name="D", actions=GATE, wait_shown_on="action")
    run = emulator.start_execution("web", 2)
    end = {"returns": "id", "push_return_value": True}
    event = await raw_event(in_triggerer(trigger(run["id"], pipeline_id=2, on_approval="succeed", end_in_triggerer=end)))
    assert isinstance(event, TaskSuccessEvent)
    assert triggerer_xcoms.values()["summary"]["waiting_action_name"] == "Approve production"


async def test_a_failure_resumes_the_worker_only_after_the_hold(emulator: BuddyEmulator) -> None:
    """What a worker must handle (a failure) is held until resume_not_before, so Airflow has registered the deferral."""
    from airflow.triggers.base import TaskSuccessEvent

    emulator.add_pipeline(project="web", pipeline_id=3, identifier="f", name="F", actions=FAILING, outcome="FAILED", fail_action=40)
    run = emulator.start_execution("web", 3)
    end = {"returns": "id", "push_return_value": True}
    hold_until = time.time() + 1.5
    event = await raw_event(trigger(run["id"], pipeline_id=3, end_in_triggerer=end, resume_not_before=hold_until))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "failed"
    assert time.time() >= hold_until


def test_how_the_wait_ends_survives_serialization() -> None:
    end = {"returns": "summary", "push_return_value": False}
    _, kwargs = trigger(7, end_in_triggerer=end, resume_not_before=123.5).serialize()
    rebuilt = BuddyExecutionTrigger(**kwargs)
    assert rebuilt.end_in_triggerer == end and rebuilt.resume_not_before == 123.5


@requires_triggerer_xcom_store()
async def test_a_task_started_in_the_triggerer_hands_its_arguments_that_run_resolves(
    emulator: BuddyEmulator, triggerer_xcoms: TriggererXComs
) -> None:
    """start_from_trigger: Airflow builds the trigger from the sensor's kwargs (as the serialized DAG holds them) and
    runs it. run() resolves them (a pipeline identifier looked up once) and ends the task there, with the link the
    task never stored itself."""
    from airflow.triggers.base import TaskSuccessEvent

    from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor

    run = emulator.start_execution("web", 1)
    sensor = BuddyExecutionSensor(task_id="s", project_name="web", pipeline_id="build", execution_id=str(run["id"]), deferrable=True)
    assert sensor.start_from_trigger is True
    args = sensor.start_trigger_args
    assert args.next_method == "execute_complete" and args.trigger_kwargs["end_in_triggerer"]["returns"] == "summary"
    trig = in_triggerer(BuddyExecutionTrigger(**{**args.trigger_kwargs, "poll_interval": 0.05}))
    event = await raw_event(trig)
    assert isinstance(event, TaskSuccessEvent)
    xcoms = triggerer_xcoms.values()
    assert xcoms["return_value"]["execution_id"] == run["id"] and xcoms["return_value"]["status"] == "SUCCESSFUL"
    assert xcoms["html_url"] == run["html_url"] == xcoms["_link_BuddyExecutionLink"]


async def test_a_rendered_argument_that_is_wrong_ends_with_an_error_naming_it(emulator: BuddyEmulator) -> None:
    trig = trigger(1)
    trig.execution_id = "not a number"
    event = await first_event(trig)
    assert event["status"] == "error" and event["error_kind"] == "configuration"
    assert "execution_id must be a positive whole number" in event["message"]


async def test_not_executed_ends_the_wait(emulator: BuddyEmulator) -> None:
    """A run Buddy ends NOT_EXECUTED ends the trigger's wait (it used to read as still going until the deadline)."""
    emulator.add_pipeline(project="web", pipeline_id=6, identifier="n", name="N", actions=FAILING, outcome="NOT_EXECUTED", enqueued_for=10)
    run = emulator.start_execution("web", 6)
    assert run["status"] == "ENQUEUED"
    event = await first_event(trigger(run["id"], pipeline_id=6, end_time=time.time() + 30))
    assert event["status"] == "skipped" and event["execution_status"] == "NOT_EXECUTED"
    assert "ended without running (status NOT_EXECUTED)" in event["message"]


async def test_approve_policy_approves_a_visual_test_session(emulator: BuddyEmulator) -> None:
    visual = [
        {"id": 70, "name": "Approve visual tests", "type": "APPROVE_VT"},
        {"id": 71, "name": "Deploy", "type": "BUILD", "duration": 1},
    ]
    emulator.add_pipeline(project="web", pipeline_id=7, identifier="v", name="V", actions=visual, wait_shown_on="action")
    run = emulator.start_execution("web", 7)
    event = await first_event(trigger(run["id"], pipeline_id=7, on_approval="approve"))
    assert event["status"] == "success"
    aeid = emulator.execution("web", 7, run["id"])["action_executions"][0]["action_execution_id"]
    assert patches(emulator, run["id"]) == [{"operation": "APPROVE_VT", "approve_action_id": aeid}]
