"""The models against every example in the Buddy docs (copied into tests/fixtures)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from airflow_provider_buddy.models import (
    Execution,
    Pipeline,
    RunPipelineRequest,
    StatusGroup,
    Variable,
    WaitKind,
    status_group,
)
from airflow_provider_buddy.models.validation import describe_validation_error

FIXTURES = Path(__file__).parent.parent / "fixtures"
EXECUTION_RESPONSES = sorted(p for p in FIXTURES.glob("seed00[012]_response*.json"))
RUN_REQUESTS = sorted(FIXTURES.glob("seed00[12]_request*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", EXECUTION_RESPONSES, ids=lambda p: p.name)
def test_every_seed_execution_parses(path: Path) -> None:
    data = load(path)
    execution = Execution.model_validate(data)
    assert execution.id == data["id"]
    assert execution.html_url == data["html_url"]
    assert execution.status == data["status"]
    assert execution.triggered_on == data.get("triggered_on", data.get("triggeredOn"))
    assert len(execution.action_executions) == len(data["action_executions"])
    assert execution.pipeline is not None and execution.pipeline.id == data["pipeline"]["id"]


def test_both_triggered_on_spellings_parse() -> None:
    old = Execution.model_validate(load(FIXTURES / "seed000_response0.json"))
    new = Execution.model_validate(load(FIXTURES / "seed001_response0.json"))
    assert old.triggered_on == "CLICK"
    assert new.triggered_on == "EVENT"


def test_seed_pipeline_parses_with_actions() -> None:
    pipeline = Pipeline.model_validate(load(FIXTURES / "seed004_response0.json"))
    assert (pipeline.id, pipeline.identifier, pipeline.name) == (123, "deploy-production", "Deploy to production")
    assert pipeline.actions[0].id == 456 and pipeline.actions[0].type == "BUILD"


@pytest.mark.parametrize("path", RUN_REQUESTS, ids=lambda p: p.name)
def test_run_request_builds_each_documented_body(path: Path) -> None:
    body = load(path)
    kwargs: dict[str, Any] = {}
    for ref in ("branch", "tag", "pull_request"):
        if ref in body:
            kwargs[ref] = body[ref]["name"]
    if "to_revision" in body:
        kwargs["revision"] = body["to_revision"]["revision"]
    if "from_revision" in body:
        kwargs["from_revision"] = body["from_revision"]["revision"]
    for key in ("comment", "refresh", "clear_cache", "priority", "environment", "package_version", "actions_to_run", "variables"):
        if key in body:
            kwargs[key] = body[key]
    assert RunPipelineRequest(**kwargs).to_api() == body


def test_run_request_from_plain_values() -> None:
    when = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    request = RunPipelineRequest(branch="main", revision="HEAD", variables={"VERSION": 2, "DEBUG": True}, priority="high", delay_until=when)
    assert request.to_api() == {
        "branch": {"name": "main"},
        "to_revision": {"revision": "HEAD"},
        "priority": "HIGH",
        "variables": [{"key": "VERSION", "value": "2"}, {"key": "DEBUG", "value": "true"}],
        "delay_until": "2026-03-01T10:30:00.000Z",
    }


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"branch": "a", "tag": "b"}, "at most one of branch, tag, pull_request"),
        ({"tag": "v1", "pull_request": "pull/3"}, "at most one of branch, tag, pull_request"),
        ({"priority": "URGENT"}, "priority"),
        ({"actions_to_run": [0]}, "actions_to_run"),
        ({"actions_to_run": [-3]}, "actions_to_run"),
        ({"delay_until": datetime(2026, 1, 1)}, "delay_until: must be timezone-aware"),
        ({"branch": "  "}, "branch: must not be empty"),
        ({"variables": "x=1"}, "variables"),
        ({"variables": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}, "duplicate keys ['A']"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_run_request_rejects_bad_input_naming_the_parameter(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as info:
        RunPipelineRequest(**kwargs)
    assert expected in describe_validation_error(info.value)


def test_validation_message_never_echoes_secret_values() -> None:
    with pytest.raises(ValidationError) as info:
        RunPipelineRequest(branch="a", tag="b", variables=[{"key": "pass", "value": "hunter2-secret", "encrypted": True}])
    assert "hunter2-secret" not in describe_validation_error(info.value)


def test_encrypted_variable_is_masked_in_repr_and_str() -> None:
    secret = Variable(key="pass", value="qwerty-secret", encrypted=True)
    plain = Variable(key="version", value="1.0")
    request = RunPipelineRequest(variables=[secret, plain])
    for text in (repr(secret), str(secret), repr(request), str(request)):
        assert "qwerty-secret" not in text
    assert "1.0" in repr(plain)
    assert request.to_api()["variables"][0] == {"key": "pass", "value": "qwerty-secret", "encrypted": True}


@pytest.mark.parametrize(
    ("status", "group"),
    [
        ("SUCCESSFUL", StatusGroup.SUCCESS),
        ("FAILED", StatusGroup.FAILURE),
        ("TERMINATED", StatusGroup.CANCELLED),
        ("SKIPPED", StatusGroup.SKIPPED),
        ("INPROGRESS", StatusGroup.RUNNING),
        ("ENQUEUED", StatusGroup.RUNNING),
        ("INITIAL", StatusGroup.RUNNING),
        ("TERMINATING", StatusGroup.RUNNING),
        ("WAITING_FOR_APPLY", StatusGroup.WAITING_FOR_PERSON),
        ("WAITING_FOR_VARIABLES", StatusGroup.WAITING_FOR_PERSON),
        ("WAITING_FOR_SETTABLE_VARIABLES", StatusGroup.WAITING_FOR_PERSON),
        ("WAITING_FOR_VT_SESSION", StatusGroup.WAITING_FOR_PERSON),
        ("SOMETHING_NEW", StatusGroup.UNKNOWN),
    ],
)
def test_status_groups(status: str, group: StatusGroup) -> None:
    assert status_group(status) is group


def _execution(status: str, actions: list[tuple[str, str]]) -> Execution:
    return Execution.model_validate(
        {
            "id": 7,
            "status": status,
            "action_executions": [
                {"action_execution_id": f"ae{i}", "status": s, "action": {"id": i, "name": name}} for i, (name, s) in enumerate(actions)
            ],
        }
    )


def test_gate_shown_on_execution_status_only() -> None:
    execution = _execution("WAITING_FOR_APPLY", [("Build", "SUCCESSFUL")])
    assert execution.status_group is StatusGroup.WAITING_FOR_PERSON
    assert execution.waits_for is WaitKind.APPROVAL
    assert execution.waiting_action is None


def test_gate_shown_only_on_an_action_execution() -> None:
    execution = _execution("INPROGRESS", [("Build", "SUCCESSFUL"), ("Release notes", "WAITING_FOR_VARIABLES")])
    assert execution.status_group is StatusGroup.WAITING_FOR_PERSON
    assert execution.waits_for is WaitKind.VARIABLES
    assert execution.waiting_action is not None and execution.waiting_action.action_execution_id == "ae1"


def test_finished_execution_never_waits_and_names_failed_action() -> None:
    execution = _execution("FAILED", [("Build", "FAILED"), ("Approve", "WAITING_FOR_APPLY")])
    assert execution.waits_for is None and execution.status_group is StatusGroup.FAILURE
    assert execution.failed_action is not None and execution.failed_action.name == "Build"


def test_unknown_fields_and_statuses_are_tolerated() -> None:
    execution = Execution.model_validate({"id": 1, "status": "QUANTUM", "brand_new_field": {"x": 1}, "action_executions": None})
    assert execution.status == "QUANTUM" and execution.status_group is StatusGroup.UNKNOWN
    assert execution.action_executions == []


def test_outputted_variables_hide_encrypted_values() -> None:
    execution = Execution.model_validate(
        {
            "id": 1,
            "status": "SUCCESSFUL",
            "action_executions": [
                {
                    "status": "SUCCESSFUL",
                    "outputted_variables": [{"key": "V", "value": "1.2"}, {"key": "S", "value": "xyz", "encrypted": True}],
                }
            ],
        }
    )
    assert execution.outputted_variables() == {"V": "1.2", "S": "***"}
