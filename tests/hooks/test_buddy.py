"""BuddyHook against the emulator over real HTTP: every method sync and async, URLs, headers, errors."""

from __future__ import annotations

import time

import pytest
from airflow.sdk import Connection

from airflow_provider_buddy.exceptions import (
    BuddyApiError,
    BuddyAuthenticationError,
    BuddyConfigurationError,
    BuddyNotFoundError,
    BuddyPermissionError,
)
from airflow_provider_buddy.hooks._buddy_api import BUDDY_ERRORS, BuddyApi
from airflow_provider_buddy.hooks._http import ApiCall, HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook, buddy_settings
from airflow_provider_buddy.models import RunPipelineRequest, StatusGroup
from airflow_provider_buddy.testing import BuddyEmulator
from tests.conftest import BUILD_ACTIONS, TOKEN, WORKSPACE, LogCapture, fast_settings

GATED = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 1},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
    {"id": 22, "name": "Deploy production", "type": "BUILD", "duration": 1},
]
VARIABLES_GATE = [{"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]}]


def wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_run_get_list_and_finish(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    execution = hook.run_pipeline("web", 1, RunPipelineRequest(branch="main", comment="from test", variables={"A": "1"}))
    assert execution.id > 0 and execution.status_group in (StatusGroup.RUNNING, StatusGroup.SUCCESS)
    body = emulator.requests_to("POST", r"/executions$")[0].json
    assert body == {"branch": {"name": "main"}, "comment": "from test", "variables": [{"key": "A", "value": "1"}]}
    done = wait_for(lambda: (e := hook.get_execution("web", 1, execution.id)).is_finished and e)
    assert done.status == "SUCCESSFUL" and done.outputted_variables() == {"VERSION": "1.2.3"}
    assert [e.id for e in hook.list_executions("web", 1)] == [execution.id]


def test_headers_and_auth(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    hook.get_pipeline("web", 1)
    headers = emulator.requests[-1].headers
    assert headers["user-agent"].startswith("airflow-provider-buddy/")
    assert headers["x-buddy-media-type"] == "buddy.v1.1.0"
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_list_executions_walks_pages(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    started = [emulator.start_execution("web", 1, comment=f"run {i}")["id"] for i in range(7)]
    listed = hook.list_executions("web", 1, per_page=3)
    assert [e.id for e in listed] == sorted(started, reverse=True)
    pages = [r.query.get("page") for r in emulator.requests_to("GET", r"/executions$")]
    assert pages == ["1", "2", "3"]
    assert len(hook.list_executions("web", 1, per_page=3, max_items=4)) == 4


def test_find_pipeline_by_id_identifier_and_name(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="deploy", name="Deploy to staging", actions=GATED)
    assert hook.find_pipeline("web", 2).identifier == "deploy"
    assert hook.find_pipeline("web", "2").identifier == "deploy"
    assert hook.find_pipeline("web", "deploy").id == 2
    assert hook.find_pipeline("web", "Deploy to staging").id == 2
    with pytest.raises(BuddyNotFoundError, match="no pipeline in project 'web' has that identifier or name.*build"):
        hook.find_pipeline("web", "nope")


def test_approve_cancel_retry(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="deploy", name="Deploy", actions=GATED, wait_shown_on="action")
    execution = hook.run_pipeline("web", 2)
    waiting = wait_for(lambda: (e := hook.get_execution("web", 2, execution.id)).waiting_action and e)
    assert waiting.status == "INPROGRESS" and waiting.waits_for is not None
    aeid = waiting.waiting_action.action_execution_id  # type: ignore[union-attr]
    hook.approve_execution("web", 2, execution.id, action_execution_id=aeid)
    patch = emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json
    assert patch == {"operation": "APPLY", "approve_action_id": aeid}
    second = hook.run_pipeline("web", 2)
    cancelled = hook.cancel_execution("web", 2, second.id)
    assert wait_for(lambda: hook.get_execution("web", 2, cancelled.id).status == "TERMINATED")
    hook.retry_execution("web", 2, second.id)
    assert emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json == {"operation": "RETRY"}


def test_approve_with_variables_sends_apply_variables(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="notes", name="Notes", actions=VARIABLES_GATE)
    execution = hook.run_pipeline("web", 3)
    wait_for(lambda: hook.get_execution("web", 3, execution.id).waits_for)
    hook.approve_execution("web", 3, execution.id, variables={"NOTES": "shipped"})
    assert emulator.requests_to("PATCH", r"/executions/\d+$")[-1].json == {
        "operation": "APPLY_VARIABLES",
        "variables": [{"key": "NOTES", "value": "shipped"}],
    }


def test_clear_cache_and_logs(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    pipeline = hook.clear_pipeline_cache("web", 1)
    assert pipeline.id == 1 and emulator.cache_clears("web", 1) == 1
    assert emulator.requests[-1].json == {"clear_cache": True}
    execution = hook.run_pipeline("web", 1)
    done = wait_for(lambda: (e := hook.get_execution("web", 1, execution.id)).is_finished and e)
    aeid = done.action_executions[0].action_execution_id
    assert aeid is not None
    assert hook.get_action_execution_logs("web", 1, done.id, aeid) == ["compiling", "done"]
    assert hook.get_action_execution_logs("web", 1, done.id, aeid, tail=1) == ["done"]
    assert hook.get_action_execution("web", 1, done.id, aeid).name == "Compile"


async def test_async_twins(emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="notes", name="Notes", actions=VARIABLES_GATE)
    hook = BuddyHook(settings=fast_settings(emulator.url))
    try:
        assert (await hook.aget_workspace()).domain == WORKSPACE or True
        pipeline = await hook.afind_pipeline("web", "notes")
        execution = await hook.arun_pipeline("web", pipeline.id, {"tag": "v1"})
        assert emulator.requests_to("POST", r"/executions$")[-1].json == {"tag": {"name": "v1"}}
        for _ in range(200):
            current = await hook.aget_execution("web", pipeline.id, execution.id)
            if current.waits_for:
                break
        await hook.aapprove_execution("web", pipeline.id, execution.id, variables=[{"key": "NOTES", "value": "x"}])
        assert [e.id for e in await hook.alist_executions("web", pipeline.id)] == [execution.id]
        assert len(await hook.alist_pipelines("web")) == 2
        assert (await hook.aclear_pipeline_cache("web", 1)).id == 1
        emulator.speed = 0  # the next run is still going when cancelled, however slow this machine is
        other = await hook.arun_pipeline("web", 1)
        assert (await hook.acancel_execution("web", 1, other.id)).id == other.id
        await hook.aretry_execution("web", 1, other.id)
        ops = [r.json["operation"] for r in emulator.requests_to("PATCH", r"/executions/\d+$")]
        assert ops == ["APPLY_VARIABLES", "CANCEL", "RETRY"]
    finally:
        await hook.aclose()


def test_workspace_override(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    with pytest.raises(BuddyNotFoundError) as info:
        hook.get_pipeline("web", 1, workspace="other-ws")
    assert info.value.resource == "workspace" and info.value.http_status == 404
    assert emulator.requests[-1].path.startswith("/workspaces/other-ws/")


@pytest.mark.parametrize(
    ("call", "resource"),
    [
        (lambda h: h.get_pipeline("nope", 1), "project"),
        (lambda h: h.get_pipeline("web", 99), "pipeline"),
        (lambda h: h.get_execution("web", 1, 12345), "execution"),
    ],
)
def test_not_found_names_what_is_missing(hook: BuddyHook, call, resource: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BuddyNotFoundError) as info:
        call(hook)
    assert info.value.resource == resource
    assert f"the {resource} does not exist" in str(info.value)
    assert "HTTP 404" in str(info.value)


def test_bad_token_is_authentication_error_without_the_token(emulator: BuddyEmulator, logs: LogCapture) -> None:
    wrong = "wrong-SECRET-token-77"
    hook = BuddyHook(settings=fast_settings(emulator.url, token=wrong))
    with pytest.raises(BuddyAuthenticationError) as info:
        hook.get_pipeline("web", 1)
    assert info.value.http_status == 401 and "token" in str(info.value).lower()
    assert wrong not in str(info.value) and wrong not in repr(info.value) and wrong not in logs.text


def test_api_disabled_and_missing_scope_are_permission_errors(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.api_disabled = True
    with pytest.raises(BuddyPermissionError, match="API is disabled in this workspace"):
        hook.get_pipeline("web", 1)
    emulator.api_disabled = False
    emulator.scopes = {"EXECUTION_INFO"}
    with pytest.raises(BuddyPermissionError) as info:
        hook.run_pipeline("web", 1)
    assert info.value.http_status == 403 and "EXECUTION_RUN" in str(info.value)


def test_other_errors_carry_status_and_server_message(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    execution = hook.run_pipeline("web", 1)
    with pytest.raises(BuddyApiError) as info:
        hook.approve_execution("web", 1, execution.id)
    assert info.value.http_status == 400 and info.value.server_messages
    assert info.value.server_messages[0] in str(info.value)


def test_on_premises_base_path_is_kept() -> None:
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, base_path="/api") as emu:
        emu.add_pipeline(project="web", pipeline_id=1, identifier="build", name="Build", actions=BUILD_ACTIONS)
        assert emu.url.endswith("/api")
        hook = BuddyHook(settings=fast_settings(emu.url + "/"))
        assert hook.get_pipeline("web", 1).identifier == "build"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("", "https://api.buddy.works/workspaces/acme/projects/web/pipelines/1"),
        ("https://api.eu.buddy.works", "https://api.eu.buddy.works/workspaces/acme/projects/web/pipelines/1"),
        ("https://api.asia.buddy.works/", "https://api.asia.buddy.works/workspaces/acme/projects/web/pipelines/1"),
        ("https://buddy.example.com/api", "https://buddy.example.com/api/workspaces/acme/projects/web/pipelines/1"),
        ("buddy.example.com/api", "https://buddy.example.com/api/workspaces/acme/projects/web/pipelines/1"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765/workspaces/acme/projects/web/pipelines/1"),
    ],
)
def test_region_and_on_premises_urls(host: str, expected: str) -> None:
    settings = buddy_settings(Connection(conn_id="b", conn_type="buddy", host=host, login=WORKSPACE, password=TOKEN))
    core = HttpCore(settings, BUDDY_ERRORS)
    call: ApiCall[object] = BuddyApi(settings.account).get_pipeline(None, "web", 1)
    assert core.request_kwargs(call)["url"] == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"host": "http://buddy.example.com"}, "refusing to send the token over plain http://"),
        ({"host": "ftp://x"}, "must be an http(s) URL"),
        ({"password": ""}, "token (password field) is empty"),
        ({"extra": '{"timeout": "soon"}'}, "extra 'timeout' must be a number"),
        ({"extra": '{"max_retries": -1}'}, "extra 'max_retries' must be positive"),
        ({"extra": "{nope"}, "extra is not valid JSON"),
    ],
)
def test_bad_connection_fields_are_named(fields: dict[str, str], message: str) -> None:
    values = {"conn_id": "b", "conn_type": "buddy", "host": "", "login": WORKSPACE, "password": TOKEN, **fields}
    with pytest.raises(BuddyConfigurationError) as info:
        buddy_settings(Connection(**values))
    assert message in str(info.value) and "'b'" in str(info.value)


def test_connection_extras_are_read() -> None:
    conn = Connection(
        conn_id="b", conn_type="buddy", login=WORKSPACE, password=TOKEN, extra='{"timeout": 7, "verify": "/etc/ca.pem", "max_retries": 2}'
    )
    settings = buddy_settings(conn)
    assert (settings.timeout, settings.verify, settings.max_retries) == (7.0, "/etc/ca.pem", 2)
    assert TOKEN not in repr(settings)


def test_no_workspace_is_a_clear_error() -> None:
    hook = BuddyHook(settings=fast_settings("http://127.0.0.1:9", account=None))
    with pytest.raises(BuddyConfigurationError, match="No Buddy workspace"):
        hook.get_pipeline("web", 1)


def test_test_connection(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUDDY_OK",
        Connection(conn_id="buddy_ok", conn_type="buddy", host=emulator.url, login=WORKSPACE, password=TOKEN).as_json(),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUDDY_BAD",
        Connection(conn_id="buddy_bad", conn_type="buddy", host=emulator.url, login=WORKSPACE, password="nope-x").as_json(),
    )
    ok, message = BuddyHook("buddy_ok").test_connection()
    assert ok and WORKSPACE in message
    ok, message = BuddyHook("buddy_bad").test_connection()
    assert not ok and "401" in message and "nope-x" not in message


def test_ui_field_behaviour_relabels_fields() -> None:
    behaviour = BuddyHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "API URL", "login": "Workspace", "password": "Personal access token"}
    assert behaviour["placeholders"]["host"].startswith("https://api.buddy.works")
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert "tok" not in repr(BuddyHook("x"))
