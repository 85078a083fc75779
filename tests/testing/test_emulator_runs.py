"""The emulated execution state machine, driven through plain HTTP and the emulated clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import ApiError, BuddyEmulator

RUNS = "/workspaces/acme/projects/web/pipelines/1/executions"
FROZEN = pytest.mark.buddy_emulator(speed=0)  # only emu.advance() moves the clock

pytestmark = FROZEN


def statuses(run: dict[str, Any]) -> tuple[str, list[str]]:
    return run["status"], [a["status"] for a in run["action_executions"]]


def start(api: httpx.Client, **body: Any) -> dict[str, Any]:
    response = api.post(RUNS, json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def get(api: httpx.Client, run_id: int) -> dict[str, Any]:
    run: dict[str, Any] = api.get(f"{RUNS}/{run_id}").json()
    return run


def patch(api: httpx.Client, run_id: int, **body: Any) -> httpx.Response:
    return api.patch(f"{RUNS}/{run_id}", json=body)


def message(response: httpx.Response) -> str:
    text: str = response.json()["errors"][0]["message"]
    return text


def test_build_wait_approve_pass_arguments_success(emu: BuddyEmulator, api: httpx.Client) -> None:
    run = start(api, comment="marker")
    rid = run["id"]
    assert statuses(run) == ("INPROGRESS", ["INPROGRESS", "INITIAL", "INITIAL", "INITIAL"])
    assert run["action_executions"][0]["outputted_variables"] == []
    emu.advance(1.0)
    assert get(api, rid)["action_executions"][0]["progress"] == 50
    emu.advance(1.5)
    run = get(api, rid)
    assert statuses(run) == ("WAITING_FOR_APPLY", ["SUCCESSFUL", "WAITING_FOR_APPLY", "INITIAL", "INITIAL"])
    compile_ = run["action_executions"][0]
    assert compile_["outputted_variables"][0] == {**compile_["outputted_variables"][0], "key": "VERSION", "value": "1.2.3"}
    assert compile_["progress"] == 100 and compile_["finish_date"] is not None
    assert run["finish_date"] is None
    emu.advance(600)  # waiting does not end by itself
    assert get(api, rid)["status"] == "WAITING_FOR_APPLY"

    approved = patch(api, rid, operation="APPLY")
    assert approved.status_code == 200
    run = approved.json()
    assert statuses(run) == ("WAITING_FOR_VARIABLES", ["SUCCESSFUL", "SUCCESSFUL", "WAITING_FOR_VARIABLES", "INITIAL"])
    gate = run["action_executions"][1]
    assert gate["approver_id"] == 1 and gate["approval_date"] is not None

    response = patch(api, rid, operation="APPLY_VARIABLES", variables=[{"key": "NOTES", "value": "Fixes"}])
    assert response.status_code == 200
    run = response.json()
    assert run["action_executions"][2]["passed_variables"][0]["value"] == "Fixes"
    assert statuses(run) == ("INPROGRESS", ["SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "INPROGRESS"])
    emu.advance(0.5)  # the deploy's 1 s counts from the approval, not from the start of the run
    assert get(api, rid)["status"] == "INPROGRESS"
    emu.advance(0.6)
    run = get(api, rid)
    assert statuses(run) == ("SUCCESSFUL", ["SUCCESSFUL"] * 4)
    assert run["finish_date"] is not None and run["comment"] == "marker"
    assert api.get("/workspaces/acme/projects/web/pipelines/1").json()["last_execution_status"] == "SUCCESSFUL"


def test_wait_shown_on_the_action_only(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(
        project="web",
        pipeline_id=1,
        identifier="deploy",
        actions=[{"id": 1, "name": "Stage", "duration": 1}, {"id": 2, "name": "Gate", "type": "WAIT_FOR_APPLY"}],
        wait_shown_on="action",
    )
    rid = start(api)["id"]
    buddy_emulator.advance(1.5)
    assert statuses(get(api, rid)) == ("INPROGRESS", ["SUCCESSFUL", "WAITING_FOR_APPLY"])
    assert patch(api, rid, operation="APPLY").json()["status"] == "SUCCESSFUL"


def test_failed_run_with_error_message_and_logs(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(
        project="web",
        pipeline_id=1,
        identifier="build",
        actions=[
            {"id": 1, "name": "Install", "duration": 1},
            {"id": 2, "name": "Test", "duration": 2, "log": [f"test {i}" for i in range(5)]},
            {"id": 3, "name": "Ship", "duration": 1},
        ],
        outcome="FAILED",
        fail_action=2,
        error_message="Tests failed: 3 of 42",
    )
    rid = start(api)["id"]
    buddy_emulator.advance(2.0)
    run = get(api, rid)
    failing = run["action_executions"][1]
    logs_url = f"{RUNS}/{rid}/action_executions/{failing['action_execution_id']}/logs"
    partial = api.get(logs_url).json()
    assert partial["logs"] == ["test 0", "test 1"] and partial["total_element_count"] == 2
    buddy_emulator.advance(1.5)
    run = get(api, rid)
    assert statuses(run) == ("FAILED", ["SUCCESSFUL", "FAILED", "NOT_EXECUTED"])
    assert run["finish_date"] is not None
    failing = run["action_executions"][1]
    assert failing["error_message"] == "Tests failed: 3 of 42"
    assert "error_message" not in run["action_executions"][0]
    logs = api.get(logs_url).json()
    assert logs["logs"] == [*(f"test {i}" for i in range(5)), "ERROR: Tests failed: 3 of 42"]
    assert (logs["offset"], logs["element_count"], logs["total_element_count"]) == (0, 6, 6)
    window = api.get(logs_url, params={"offset": 4, "limit": 1}).json()
    assert window == {"offset": 4, "element_count": 1, "total_element_count": 6, "logs": ["test 4"]}
    too_many = api.get(logs_url, params={"limit": 1001})
    assert too_many.status_code == 400 and "1000" in message(too_many)
    not_run = run["action_executions"][2]["action_execution_id"]
    assert api.get(f"{RUNS}/{rid}/action_executions/{not_run}/logs").json()["logs"] == []


def test_cancel_running_then_cancel_again(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = start(api)["id"]
    emu.advance(1.0)
    response = patch(api, rid, operation="CANCEL")
    assert response.status_code == 200
    run = response.json()
    assert statuses(run) == ("TERMINATED", ["TERMINATED", "NOT_EXECUTED", "NOT_EXECUTED", "NOT_EXECUTED"])
    assert run["finish_date"] is not None
    emu.advance(100)
    assert get(api, rid)["status"] == "TERMINATED"
    again = patch(api, rid, operation="CANCEL")
    assert again.status_code == 400 and message(again) == "Execution has already finished"


def test_cancel_while_waiting(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = start(api)["id"]
    emu.advance(3)
    run = patch(api, rid, operation="CANCEL").json()
    assert statuses(run) == ("TERMINATED", ["SUCCESSFUL", "TERMINATED", "NOT_EXECUTED", "NOT_EXECUTED"])


def test_retry_failed_run_continues_from_the_failed_action(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(
        project="web",
        pipeline_id=1,
        identifier="build",
        actions=[{"id": 1, "name": "A", "duration": 1}, {"id": 2, "name": "B", "duration": 1}],
        outcome="FAILED",
        fail_action=2,
        retry_outcome="SUCCESSFUL",
    )
    rid = start(api)["id"]
    buddy_emulator.advance(1.5)
    early = patch(api, rid, operation="RETRY")
    assert early.status_code == 400 and "INPROGRESS" in message(early)
    buddy_emulator.advance(1)
    failed = get(api, rid)
    assert statuses(failed) == ("FAILED", ["SUCCESSFUL", "FAILED"])
    retried = patch(api, rid, operation="RETRY").json()
    assert retried["id"] == rid
    assert statuses(retried) == ("INPROGRESS", ["SUCCESSFUL", "INPROGRESS"])
    first_before, first_after = failed["action_executions"][0], retried["action_executions"][0]
    assert first_after["start_date"] == first_before["start_date"]  # the successful action did not run again
    assert "error_message" not in retried["action_executions"][1]
    buddy_emulator.advance(1.1)
    assert statuses(get(api, rid)) == ("SUCCESSFUL", ["SUCCESSFUL", "SUCCESSFUL"])
    again = patch(api, rid, operation="RETRY")
    assert again.status_code == 400 and "SUCCESSFUL" in message(again)
    assert len(buddy_emulator.executions("web", 1)) == 1


def test_retry_terminated_run(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = start(api)["id"]
    patch(api, rid, operation="CANCEL")
    run = patch(api, rid, operation="RETRY").json()
    assert statuses(run) == ("INPROGRESS", ["INPROGRESS", "INITIAL", "INITIAL", "INITIAL"])


def test_approval_rules(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = start(api)["id"]
    not_waiting = patch(api, rid, operation="APPLY")
    assert not_waiting.status_code == 400 and message(not_waiting) == "Execution is not waiting for approval"
    emu.advance(2)
    waiting = get(api, rid)["action_executions"][1]
    wrong_kind = patch(api, rid, operation="APPLY_VARIABLES", variables=[{"key": "NOTES", "value": "x"}])
    assert wrong_kind.status_code == 400 and "use APPLY" in message(wrong_kind)
    wrong_id = patch(api, rid, operation="APPLY", approve_action_id=12)
    assert wrong_id.status_code == 400 and "approve_action_id" in message(wrong_id)
    assert patch(api, rid, operation="APPLY", approve_action_id=waiting["action_execution_id"]).status_code == 200
    # now the pass-arguments action waits
    assert patch(api, rid, operation="APPLY").status_code == 400
    no_variables = patch(api, rid, operation="APPLY_VARIABLES")
    assert no_variables.status_code == 400 and "variables are required" in message(no_variables)
    bad_variables = patch(api, rid, operation="APPLY_VARIABLES", variables=[{"key": "NOTES", "value": 3}])
    assert bad_variables.status_code == 400
    by_action_id = patch(api, rid, operation="APPLY_VARIABLES", approve_action_id=12, variables=[{"key": "EXTRA", "value": "1"}])
    assert by_action_id.status_code == 200
    passed = {v["key"]: v["value"] for v in by_action_id.json()["action_executions"][2]["passed_variables"]}
    assert passed == {"NOTES": "default", "EXTRA": "1"}  # defaults kept, new values added
    unknown = patch(api, rid, operation="PAUSE")
    assert unknown.status_code == 400 and "operation must be one of" in message(unknown)
    assert patch(api, rid).status_code == 400


def test_delay_until_keeps_the_run_enqueued(emu: BuddyEmulator, api: httpx.Client) -> None:
    when = emu.now() + timedelta(seconds=30)
    run = start(api, delay_until=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert statuses(run)[0] == "ENQUEUED" and run["start_date"] is None
    assert set(statuses(run)[1]) == {"INITIAL"}
    emu.advance(29)
    assert get(api, run["id"])["status"] == "ENQUEUED"
    emu.advance(2)
    assert get(api, run["id"])["status"] == "INPROGRESS"
    past = start(api, delay_until=(datetime.now(timezone.utc) - timedelta(hours=1)).isoformat())
    assert past["status"] == "INPROGRESS"
    cancelled = start(api, delay_until=(emu.now() + timedelta(minutes=5)).isoformat())
    assert statuses(patch(api, cancelled["id"], operation="CANCEL").json()) == ("TERMINATED", ["NOT_EXECUTED"] * 4)
    delayed = start(api, delay_until=(emu.now() + timedelta(hours=1)).isoformat())
    assert patch(api, delayed["id"], operation="RUN_DELAYED").json()["status"] == "INPROGRESS"


def test_enqueued_for(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="q", enqueued_for=5)
    rid = start(api)["id"]
    buddy_emulator.advance(4.9)
    assert get(api, rid)["status"] == "ENQUEUED"
    buddy_emulator.advance(0.2)
    assert get(api, rid)["status"] == "INPROGRESS"
    buddy_emulator.advance(1)
    assert get(api, rid)["status"] == "SUCCESSFUL"


@pytest.mark.parametrize("outcome", ["TERMINATED", "SKIPPED"])
def test_terminated_and_skipped_outcomes(buddy_emulator: BuddyEmulator, api: httpx.Client, outcome: str) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="x", outcome=outcome)
    rid = start(api)["id"]
    buddy_emulator.advance(1.1)
    run = get(api, rid)
    assert run["status"] == outcome and run["finish_date"] is not None


def test_actions_to_run_limits_the_run(emu: BuddyEmulator, api: httpx.Client) -> None:
    run = start(api, actions_to_run=[13, 10])
    assert [a["action"]["id"] for a in run["action_executions"]] == [10, 13]
    emu.advance(3.1)
    assert get(api, run["id"])["status"] == "SUCCESSFUL"


def test_run_started_and_approved_in_buddy(emu: BuddyEmulator, api: httpx.Client) -> None:
    run = emu.start_execution("web", 1, comment="clicked")
    assert run["triggered_on"] == "CLICK" and run["creator"]["id"] == 2
    listed = api.get(RUNS).json()["executions"]
    assert [(e["id"], e["comment"]) for e in listed] == [(run["id"], "clicked")]
    with pytest.raises(ApiError, match="not waiting"):
        emu.approve_in_buddy("web", 1, run["id"])
    emu.advance(2)
    emu.approve_in_buddy("web", 1, run["id"])
    emu.approve_in_buddy("web", 1, run["id"], variables={"NOTES": "from the UI"})
    seen = get(api, run["id"])
    assert seen["action_executions"][1]["approver_id"] == 2
    assert seen["action_executions"][2]["passed_variables"][0]["value"] == "from the UI"
    assert emu.execution("web", 1, run["id"])["status"] == "INPROGRESS"


@pytest.mark.buddy_emulator(speed=40.0)
def test_the_clock_runs_at_the_given_speed(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b", actions=[{"id": 1, "name": "A", "duration": 2}])
    rid = start(api)["id"]  # 2 emulated seconds = 50 ms real
    time.sleep(0.1)  # at least 4 emulated seconds go by, however slow this machine is (real time never passes slower)
    assert get(api, rid)["status"] == "SUCCESSFUL", "a 2 s action at speed 40 should finish within 0.1 s"
    assert buddy_emulator.speed == 40.0


def test_speed_pauses_and_resumes_the_clock_keeping_the_time_so_far(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = start(api)["id"]
    emu.advance(1.0)
    emu.speed = 1000.0  # 2.5 s of actions take 2.5 ms now
    time.sleep(0.05)
    emu.speed = 0
    paused_at = emu.now()
    assert get(api, rid)["status"] == "WAITING_FOR_APPLY"
    time.sleep(0.05)
    assert emu.now() == paused_at and emu.speed == 0
    with pytest.raises(ValueError, match="speed"):
        emu.speed = -1
