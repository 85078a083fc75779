"""BuddyHook against the emulator: the identifiers lookup, every documented execution operation (SET_VARIABLES,
APPROVE_VT, RUN_DELAYED beside APPLY/APPLY_VARIABLES), scope hints naming both scope schemes, and the run answer's
environment/package objects (sync and async)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_buddy.exceptions import BuddyConfigurationError, BuddyNotFoundError, BuddyPermissionError
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.models import RunPipelineRequest
from airflow_provider_buddy.testing import BuddyEmulator
from tests.conftest import fast_settings

HIDDEN = [{"id": 60, "name": "Deploy", "type": "BUILD", "duration": 1}]
WAITS = {
    "WAIT_FOR_APPLY": ("WAITING_FOR_APPLY", "APPLY", None),
    "WAIT_FOR_VARIABLES": ("WAITING_FOR_VARIABLES", "APPLY_VARIABLES", {"NOTES": "shipped"}),
    "SET_VARIABLES": ("WAITING_FOR_SETTABLE_VARIABLES", "SET_VARIABLES", {"NOTES": "shipped"}),
    "APPROVE_VT": ("WAITING_FOR_VT_SESSION", "APPROVE_VT", None),
}


def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def identifier_lookups(emulator: BuddyEmulator) -> list[Any]:
    return emulator.requests_to("GET", r"/workspaces/acme/identifiers$")


def pipeline_lists(emulator: BuddyEmulator) -> list[Any]:
    return emulator.requests_to("GET", r"/projects/web/pipelines$")


def gated(emulator: BuddyEmulator, action_type: str, pipeline_id: int = 9) -> None:
    action: dict[str, Any] = {"id": 90, "name": "Person", "type": action_type}
    if action_type in ("WAIT_FOR_VARIABLES", "SET_VARIABLES"):
        action["variables"] = [{"key": "NOTES", "value": "tbd"}]
    emulator.add_pipeline(
        project="web",
        pipeline_id=pipeline_id,
        identifier=f"gate-{pipeline_id}",
        actions=[action, {"id": 91, "name": "Ship", "type": "BUILD", "duration": 1}],
        wait_shown_on="action",
    )


# ---- pipelines by identifier -------------------------------------------------------------------------
def test_hidden_pipeline_found_by_identifier_with_one_lookup(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=6, identifier="secret-deploy", name="Secret deploy", actions=HIDDEN, hidden=True)
    assert [p.id for p in hook.list_pipelines("web")] == [1]  # the list leaves it out, as documented
    emulator.clear_requests()
    found = hook.find_pipeline("web", "secret-deploy")
    assert (found.id, found.identifier) == (6, "secret-deploy")
    (lookup,) = identifier_lookups(emulator)
    assert lookup.query == {"project": "web", "pipeline": "secret-deploy"}
    assert pipeline_lists(emulator) == []  # no listing when the lookup answers


async def test_async_find_pipeline_uses_the_lookup(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=6, identifier="secret-deploy", name="Secret deploy", actions=HIDDEN, hidden=True)
    hook = BuddyHook(settings=fast_settings(emulator.url))
    try:
        assert (await hook.afind_pipeline("web", "secret-deploy")).id == 6
        assert (await hook.alookup_identifiers(project="web", pipeline="build")).pipeline_id == 1
    finally:
        await hook.aclose()
    assert len(identifier_lookups(emulator)) == 2 and pipeline_lists(emulator) == []


@pytest.mark.parametrize("missing", ["404", "empty"])
def test_display_names_fall_back_to_listing(hook: BuddyHook, emulator: BuddyEmulator, missing: str) -> None:
    emulator.configure_buddy(identifiers_missing=missing)
    assert hook.find_pipeline("web", "Build").id == 1  # a display name: the lookup knows identifiers only
    assert len(identifier_lookups(emulator)) == 1 and len(pipeline_lists(emulator)) == 1


def test_unknown_pipeline_error_says_what_to_fix(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=6, identifier="secret-deploy", actions=HIDDEN, hidden=True)
    emulator.configure_buddy(identifiers_see_hidden=False)
    with pytest.raises(BuddyNotFoundError) as error:
        hook.find_pipeline("web", "secret-deploy")
    message = str(error.value)
    assert "no pipeline in project 'web' has that identifier or name" in message and "build (Build)" in message
    assert "hidden by its visibility settings is not listed: give its identifier or numeric id" in message


def test_lookup_needs_only_the_workspace_scope(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.scopes = {"WORKSPACE"}
    ids = hook.lookup_identifiers(project="web", pipeline="build")
    assert ids.pipeline_id == 1 and ids.project_identifier == "web" and ids.domain == "acme"


# ---- execution operations ------------------------------------------------------------------------------
@pytest.mark.parametrize("action_type", list(WAITS))
def test_answer_wait_sends_the_operation_each_wait_takes(hook: BuddyHook, emulator: BuddyEmulator, action_type: str) -> None:
    status, operation, variables = WAITS[action_type]
    gated(emulator, action_type)
    execution = hook.run_pipeline("web", 9)
    waiting = wait_for(lambda: (e := hook.get_execution("web", 9, execution.id)).waits_for and e)
    assert waiting.waiting_status == status
    aeid = waiting.waiting_action.action_execution_id  # type: ignore[union-attr]
    answer = hook.answer_wait("web", 9, execution.id, waiting.waiting_status, variables=variables, action_execution_id=aeid)
    assert answer.operation == operation
    body = emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json
    expected: dict[str, Any] = {"operation": operation, "approve_action_id": aeid}
    if variables:
        expected["variables"] = [{"key": "NOTES", "value": "shipped"}]
    assert body == expected
    assert wait_for(lambda: hook.get_execution("web", 9, execution.id).status == "SUCCESSFUL")  # Buddy took it: the run moved on


async def test_async_answer_wait_approves_a_visual_test_session(emulator: BuddyEmulator) -> None:
    gated(emulator, "APPROVE_VT")
    hook = BuddyHook(settings=fast_settings(emulator.url))
    try:
        execution = await hook.arun_pipeline("web", 9)
        emulator.advance(1)
        waiting = await hook.aget_execution("web", 9, execution.id)
        answer = await hook.aanswer_wait("web", 9, execution.id, waiting.waiting_status)
    finally:
        await hook.aclose()
    assert answer.operation == "APPROVE_VT" and emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json == {"operation": "APPROVE_VT"}


def test_settable_variables_fall_back_to_apply_variables(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.configure_buddy(settable_variables_operation="APPLY_VARIABLES")  # the other reading of the docs
    gated(emulator, "SET_VARIABLES")
    execution = hook.run_pipeline("web", 9)
    waiting = wait_for(lambda: (e := hook.get_execution("web", 9, execution.id)).waits_for and e)
    answer = hook.answer_wait("web", 9, execution.id, waiting.waiting_status, variables={"NOTES": "x"})
    assert answer.operation == "APPLY_VARIABLES"
    sent = [(r.json["operation"], r.status) for r in emulator.requests_to("PATCH", r"/executions/\d+$")]
    assert sent == [("SET_VARIABLES", 400), ("APPLY_VARIABLES", 200)]


def test_operations_are_checked_before_sending(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    with pytest.raises(BuddyConfigurationError, match="SET_VARIABLES needs variables"):
        hook.approve_execution("web", 1, 1, operation="SET_VARIABLES")
    with pytest.raises(BuddyConfigurationError, match="APPROVE_VT takes no variables"):
        hook.approve_execution("web", 1, 1, variables={"A": "1"}, operation="APPROVE_VT")
    with pytest.raises(BuddyConfigurationError, match="operation must be one of"):
        hook.approve_execution("web", 1, 1, operation="REJECT")
    assert emulator.requests_to("PATCH", r".") == []


@pytest.mark.parametrize("delayed_status", ["ENQUEUED", "INITIAL"])
def test_run_delayed_starts_a_scheduled_run_now(hook: BuddyHook, emulator: BuddyEmulator, delayed_status: str) -> None:
    emulator.configure_buddy(delayed_status=delayed_status)
    later = datetime.now(timezone.utc) + timedelta(days=2)
    scheduled = hook.run_pipeline("web", 1, RunPipelineRequest(delay_until=later))
    assert scheduled.status == delayed_status and scheduled.not_started and scheduled.delay_until is not None
    started = hook.run_delayed_execution("web", 1, scheduled.id)
    assert not started.not_started and started.status in ("INPROGRESS", "SUCCESSFUL")
    assert emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json == {"operation": "RUN_DELAYED"}


async def test_async_run_delayed(emulator: BuddyEmulator) -> None:
    hook = BuddyHook(settings=fast_settings(emulator.url))
    try:
        scheduled = await hook.arun_pipeline("web", 1, {"delay_until": datetime.now(timezone.utc) + timedelta(hours=3)})
        started = await hook.arun_delayed_execution("web", 1, scheduled.id)
    finally:
        await hook.aclose()
    assert scheduled.status == "ENQUEUED" and started.status != "ENQUEUED"


# ---- scopes and objects --------------------------------------------------------------------------------
def test_missing_scope_hint_names_both_scope_schemes(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.scopes = {"WORKSPACE", "EXECUTION_INFO"}
    with pytest.raises(BuddyPermissionError) as error:
        hook.run_pipeline("web", 1)
    message = str(error.value)
    assert "EXECUTION_RUN (or PIPELINE_RUN)" in message  # the emulator's own message
    assert "EXECUTION_RUN to run/cancel/retry/approve" in message and "PIPELINE_RUN to run/cancel/retry/approve" in message


def test_newer_scope_names_are_accepted(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.scopes = {"WORKSPACE", "PIPELINE_READ", "PIPELINE_RUN"}
    execution = hook.run_pipeline("web", 1)
    assert hook.get_execution("web", 1, execution.id).id == execution.id


def test_run_answer_carries_environment_and_package_objects(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    execution = hook.run_pipeline("web", 1, RunPipelineRequest(environment="staging", package_version="my_app:1.2.3"))
    assert execution.environment is not None and execution.environment.identifier == "staging"
    assert execution.environment.id and execution.environment.scope == "PROJECT" and execution.environment.url
    assert execution.package is not None and execution.package.name == "my_app" and execution.package.type == "CONTAINER"
    assert execution.package_version is not None and execution.package_version.version == "1.2.3" and execution.package_version.id
