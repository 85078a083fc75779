"""Models against the documented shapes the API-fidelity work follows: NOT_EXECUTED read as ended, the operation each
Buddy wait takes, the run answer's environment/package objects (seed 001), and the GoRules release (numeric version
beside semanticVersion), environment and change-request shapes (examples of the GoRules API reference, copied into
tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_buddy.models import (
    DeployResult,
    Environment,
    Execution,
    Release,
    Run,
    StatusGroup,
    approve_operations,
    status_group,
)
from airflow_provider_buddy.utils.buddy_waiting import decide
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, EventStatus, Step

FIXTURES = Path(__file__).parent.parent / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def execution(status: str, *actions: tuple[str, str]) -> Execution:
    return Execution.model_validate(
        {
            "id": 7,
            "status": status,
            "html_url": "https://app.buddy.works/x",
            "action_executions": [
                {"action_execution_id": f"ae{i}", "status": s, "action": {"name": name}} for i, (name, s) in enumerate(actions)
            ],
        }
    )


# ---- Buddy -----------------------------------------------------------------------------------------------
def test_not_executed_is_an_ended_not_run_status() -> None:
    assert status_group("NOT_EXECUTED") is StatusGroup.SKIPPED and StatusGroup.SKIPPED.finished
    decision = decide(execution("NOT_EXECUTED", ("Build", "NOT_EXECUTED")), ApprovalPolicy.WAIT)
    assert decision.step is Step.FINISH and decision.status is EventStatus.SKIPPED
    assert "ended without running (status NOT_EXECUTED)" in decision.message
    accepted = decide(execution("NOT_EXECUTED"), ApprovalPolicy.WAIT, skipped_is_success=True)
    assert accepted.status is EventStatus.SUCCESS


@pytest.mark.parametrize(
    ("status", "operations"),
    [
        ("WAITING_FOR_APPLY", ("APPLY",)),
        ("WAITING_FOR_VARIABLES", ("APPLY_VARIABLES",)),
        ("WAITING_FOR_SETTABLE_VARIABLES", ("SET_VARIABLES", "APPLY_VARIABLES")),
        ("WAITING_FOR_VT_SESSION", ("APPROVE_VT",)),
    ],
)
def test_each_wait_has_its_operation(status: str, operations: tuple[str, ...]) -> None:
    assert approve_operations(status) == operations
    waiting = execution("INPROGRESS", ("Build", "SUCCESSFUL"), ("Person", status))
    assert waiting.waiting_status == status and waiting.waiting_action is not None


def test_a_visual_test_wait_is_approved_with_approve_vt() -> None:
    waiting = execution("INPROGRESS", ("Approve visual tests", "WAITING_FOR_VT_SESSION"))
    decision = decide(waiting, ApprovalPolicy.APPROVE)
    assert decision.step is Step.APPROVE and "approving with APPROVE_VT" in decision.message
    assert "cannot be approved" not in decision.message


def test_run_answer_environment_and_package_objects_parse() -> None:
    parsed = Execution.model_validate(load("seed001_response0.json"))
    assert parsed.environment is not None
    assert (parsed.environment.name, parsed.environment.identifier, parsed.environment.id) == ("staging", "my-staging", "nZrnl40Y")
    assert parsed.package is not None and (parsed.package.identifier, parsed.package.type) == ("my-app-package", "CONTAINER")
    assert parsed.package_version is not None and (parsed.package_version.id, parsed.package_version.version) == ("0YgEzRGv", "latest")


# ---- GoRules ---------------------------------------------------------------------------------------------
def test_documented_release_with_numeric_version_parses() -> None:
    release = Release.model_validate(load("gorules_list_releases.json")["results"][0])
    assert release.version == 123 and release.semantic_version == "<string>" and release.status == "draft"
    assert release.change_requests[0].environment is not None and release.change_requests[0].environment.name == "<string>"
    assert Release.model_validate({"id": "r", "name": "Pricing", "version": 3, "semanticVersion": "1.4.0"}).label == "Pricing 1.4.0"
    assert Release.model_validate({"id": "r", "name": "Pricing", "version": 3}).label == "Pricing v3"


def test_a_runs_release_keeps_its_text_version() -> None:
    run = Run.model_validate(load("gorules_seed003_run.json"))
    assert run.release is not None and run.release.version == "<string>" and run.release_label == "<string> <string>"


def test_documented_environment_parses() -> None:
    (env,) = [Environment.model_validate(item) for item in load("gorules_list_environments.json")]
    assert env.approval_mode == "require_one_per_team" and env.required_reviewers is True and env.workflow_order == 123
    assert env.release is not None and env.release.version == 123 and env.change_requests[0].id
    assert "approval mode require_one_per_team" in env.describe()


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"id": "cr1", "status": "pending", "releaseId": "r", "environmentId": "e"}, "change_request"),
        ({"changeRequest": {"id": "cr1", "status": "pending"}}, "change_request"),
        ({"id": "cr1", "status": "open", "environment": {"id": "e", "name": "Prod"}}, "change_request"),
        ({"id": "run1", "status": "in_progress", "releaseId": "r", "jobs": []}, "run"),
        ({"id": "x"}, "id"),
        ({}, "nothing"),
    ],
)
def test_deploy_answers_are_told_apart(answer: dict[str, Any], kind: str) -> None:
    result = DeployResult.from_api(answer)
    found = "change_request" if result.change_request else "run" if result.run else "id" if result.run_id else "nothing"
    assert found == kind


def test_objects_given_as_text_still_parse() -> None:
    parsed = Execution.model_validate({"id": 1, "environment": "staging", "package": "my_app", "package_version": "my_app:1.2.3"})
    assert parsed.environment is not None and parsed.environment.name == "staging"
    assert parsed.package is not None and parsed.package.name == "my_app"
    assert parsed.package_version is not None and parsed.package_version.version == "1.2.3"
