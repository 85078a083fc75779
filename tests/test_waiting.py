"""The one decision every waiter makes, over every status group and approval policy."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_buddy.models import Execution, WaitKind
from airflow_provider_buddy.waiting import ApprovalPolicy, EventStatus, Step, decide, event_payload, failure_report


def execution(status: str, actions: list[dict[str, Any]] | None = None) -> Execution:
    return Execution.model_validate(
        {"id": 42, "status": status, "html_url": "https://app.buddy.works/x/42", "action_executions": actions or []}
    )


GATE_ON_ACTION = [
    {"action_execution_id": "a1", "status": "SUCCESSFUL", "action": {"id": 1, "name": "Build"}},
    {"action_execution_id": "a2", "status": "WAITING_FOR_APPLY", "action": {"id": 2, "name": "Approve prod"}},
]
VARIABLES_ON_ACTION = [{"action_execution_id": "a3", "status": "WAITING_FOR_VARIABLES", "action": {"id": 3, "name": "Notes"}}]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("SUCCESSFUL", EventStatus.SUCCESS),
        ("FAILED", EventStatus.FAILED),
        ("TERMINATED", EventStatus.CANCELLED),
        ("SKIPPED", EventStatus.SKIPPED),
    ],
)
def test_finished_statuses_finish(status: str, expected: EventStatus) -> None:
    decision = decide(execution(status), ApprovalPolicy.WAIT)
    assert decision.step is Step.FINISH and decision.status is expected
    assert "https://app.buddy.works/x/42" in decision.message


@pytest.mark.parametrize("status", ["INPROGRESS", "ENQUEUED", "INITIAL", "TERMINATING", "SOMETHING_NEW"])
def test_running_and_unknown_statuses_keep_waiting(status: str) -> None:
    assert decide(execution(status), ApprovalPolicy.FAIL).step is Step.KEEP_WAITING


def test_skipped_can_be_read_as_success() -> None:
    assert decide(execution("SKIPPED"), ApprovalPolicy.WAIT, skipped_is_success=True).status is EventStatus.SUCCESS


def test_failed_names_action_and_error() -> None:
    failed = execution(
        "FAILED", [{"action_execution_id": "a9", "status": "FAILED", "error_message": "exit 2", "action": {"name": "Tests"}}]
    )
    decision = decide(failed, ApprovalPolicy.WAIT)
    assert "'Tests'" in decision.message and "exit 2" in decision.message


@pytest.mark.parametrize("gate", ["status", "action"])
@pytest.mark.parametrize(
    ("policy", "step", "status"),
    [
        (ApprovalPolicy.WAIT, Step.KEEP_WAITING, None),
        (ApprovalPolicy.SUCCEED, Step.FINISH, EventStatus.WAITING_FOR_APPROVAL),
        (ApprovalPolicy.FAIL, Step.FINISH, EventStatus.FAILED),
        (ApprovalPolicy.APPROVE, Step.APPROVE, None),
    ],
)
def test_each_policy_at_a_gate_wherever_it_shows(gate: str, policy: ApprovalPolicy, step: Step, status: EventStatus | None) -> None:
    current = execution("WAITING_FOR_APPLY", GATE_ON_ACTION) if gate == "status" else execution("INPROGRESS", GATE_ON_ACTION)
    decision = decide(current, policy)
    assert decision.step is step and decision.status is status
    assert decision.waits_for is WaitKind.APPROVAL
    assert decision.waiting_action_execution_id == "a2" and decision.waiting_action_name == "Approve prod"


def test_approve_never_twice_for_the_same_action() -> None:
    decision = decide(execution("INPROGRESS", GATE_ON_ACTION), ApprovalPolicy.APPROVE, approved_action_ids=frozenset({"a2"}))
    assert decision.step is Step.KEEP_WAITING


def test_approve_skips_an_action_that_already_has_an_approval() -> None:
    actions = [dict(GATE_ON_ACTION[1], approval_date="2026-01-01T00:00:00Z")]
    assert decide(execution("INPROGRESS", actions), ApprovalPolicy.APPROVE).step is Step.KEEP_WAITING


def test_approve_without_variables_for_a_variables_prompt_is_an_error() -> None:
    decision = decide(execution("INPROGRESS", VARIABLES_ON_ACTION), ApprovalPolicy.APPROVE)
    assert decision.step is Step.FINISH and decision.status is EventStatus.ERROR
    assert "approval_variables" in decision.message
    assert decide(execution("INPROGRESS", VARIABLES_ON_ACTION), ApprovalPolicy.APPROVE, has_approval_variables=True).step is Step.APPROVE


def test_invalid_policy_names_parameter() -> None:
    with pytest.raises(ValueError, match="on_approval must be one of 'wait', 'succeed', 'fail', 'approve', got 'maybe'"):
        ApprovalPolicy.parse("maybe")


def test_event_payload_is_plain_json() -> None:
    import json

    current = execution("INPROGRESS", VARIABLES_ON_ACTION)
    payload = event_payload(current, decide(current, ApprovalPolicy.SUCCEED))
    assert json.loads(json.dumps(payload)) == payload
    assert payload["status"] == "waiting_for_approval" and payload["waits_for"] == "variables"


def test_failure_report_lists_log_tail_and_link() -> None:
    text = failure_report("Buddy execution 1 failed", "https://b/1", "Tests", ["line a", "line b"])
    assert "https://b/1" in text and "Last 2 log lines of Tests" in text and text.endswith("line b")
