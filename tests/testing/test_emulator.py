"""The emulator's HTTP API: auth, errors, pipelines, runs and their validation, recording (plain httpx)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import BuddyEmulator

PIPELINES = "/workspaces/acme/projects/web/pipelines"
RUNS = PIPELINES + "/1/executions"


def errors(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return " | ".join(e["message"] for e in body["errors"])


def test_requests_need_the_bearer_token(emu: BuddyEmulator, api: httpx.Client, make_client: Any) -> None:
    missing = make_client(emu, token="").get(PIPELINES)
    wrong = api.get(PIPELINES, headers={"Authorization": "Bearer nope"})
    basic = api.get(PIPELINES, headers={"Authorization": "Basic test-token"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert errors(response) == "Unauthorized. Token is invalid or expired"
    assert api.get(PIPELINES).status_code == 200


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/workspaces/other/projects/web/pipelines", "Workspace not found"),
        ("/workspaces/acme/projects/nope/pipelines", "Project not found"),
        ("/workspaces/acme/projects/web/pipelines/99", "Pipeline not found"),
        ("/workspaces/acme/projects/web/pipelines/abc/executions", "Pipeline not found"),
        ("/workspaces/acme/projects/web/pipelines/1/executions/99", "Execution not found"),
        ("/workspaces/acme/projects/web/pipelines/1/executions/x", "Execution not found"),
        ("/workspaces/acme/projects/web/pipelines/1/executions/1/action_executions/0123456789abcdef01234567", "Action execution not found"),
        ("/no/such/route", "Not found"),
    ],
)
def test_not_found_messages(emu: BuddyEmulator, api: httpx.Client, path: str, message: str) -> None:
    assert api.post(RUNS, json={}).status_code == 200
    response = api.get(path)
    assert response.status_code == 404
    assert errors(response) == message


def test_api_disabled_answers_403_everywhere(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.api_disabled = True
    for response in (api.get(PIPELINES), api.post(RUNS, json={}), api.get(RUNS + "/1")):
        assert response.status_code == 403
        assert errors(response) == "API is disabled in this workspace"
    assert emu.executions("web", 1) == []
    emu.api_disabled = False
    assert api.get(PIPELINES).status_code == 200


def test_missing_scope_cannot_receive_data(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.scopes = {"WORKSPACE", "EXECUTION_INFO"}
    assert api.get(PIPELINES + "/1").status_code == 200
    run = api.post(RUNS, json={})
    assert run.status_code == 403
    assert "cannot receive data" in errors(run) and "EXECUTION_RUN" in errors(run)
    clear = api.patch(PIPELINES + "/1", json={"clear_cache": True})
    assert clear.status_code == 403 and "EXECUTION_MANAGE" in errors(clear)
    emu.scopes = {"WORKSPACE"}
    assert "EXECUTION_INFO" in errors(api.get(RUNS))
    assert emu.executions("web", 1) == [] and emu.cache_clears("web", 1) == 0


def test_every_response_has_rate_limit_headers(emu: BuddyEmulator, api: httpx.Client) -> None:
    responses = [api.get(PIPELINES), api.get(PIPELINES + "/99"), api.get(PIPELINES, headers={"Authorization": ""})]
    assert [r.status_code for r in responses] == [200, 404, 401]
    for response in responses:
        assert response.headers["X-Rate-Limit-Limit"] == "1000"
    remaining = [int(r.headers["X-Rate-Limit-Remaining"]) for r in responses]
    assert remaining == sorted(remaining, reverse=True) and remaining[0] > remaining[-1]


def test_pipelines_are_paginated(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    for pipeline_id in range(1, 26):
        buddy_emulator.add_pipeline(project="web", pipeline_id=pipeline_id, identifier=f"p{pipeline_id}")
    first = api.get(PIPELINES).json()
    assert set(first) == {"url", "html_url", "pipelines"}
    assert [p["id"] for p in first["pipelines"]] == list(range(1, 21))
    second = api.get(PIPELINES, params={"page": 2}).json()
    assert [p["identifier"] for p in second["pipelines"]] == [f"p{i}" for i in range(21, 26)]
    third = api.get(PIPELINES, params={"page": 3, "per_page": 10}).json()
    assert [p["id"] for p in third["pipelines"]] == list(range(21, 26))
    assert api.get(PIPELINES, params={"page": 9}).json()["pipelines"] == []
    assert api.get(PIPELINES, params={"page": 0}).status_code == 400
    assert api.get(PIPELINES, params={"per_page": "ten"}).status_code == 400


@pytest.mark.buddy_emulator(speed=0)  # the run is still going when the pipeline is read, however slow this machine is
def test_pipeline_object(emu: BuddyEmulator, api: httpx.Client) -> None:
    pipeline = api.get(PIPELINES + "/1").json()
    assert pipeline["id"] == 1 and pipeline["identifier"] == "build" and pipeline["name"] == "Build"
    assert pipeline["url"] == emu.url + PIPELINES + "/1"
    assert pipeline["html_url"] == "https://app.buddy.works/acme/web/pipelines/pipeline/1"
    assert [(a["id"], a["type"]) for a in pipeline["actions"]] == [
        (10, "BUILD"),
        (11, "WAIT_FOR_APPLY"),
        (12, "WAIT_FOR_VARIABLES"),
        (13, "BUILD"),
    ]
    assert pipeline["last_execution_status"] == "INITIAL" and pipeline["disabled"] is False
    api.post(RUNS, json={})
    assert api.get(PIPELINES + "/1").json()["last_execution_status"] == "INPROGRESS"


def test_clear_cache(emu: BuddyEmulator, api: httpx.Client) -> None:
    response = api.patch(PIPELINES + "/1", json={"clear_cache": True})
    assert response.status_code == 200 and response.json()["identifier"] == "build"
    assert emu.cache_clears("web", 1) == 1
    for body in ({}, {"clear_cache": False}, {"name": "x"}):
        assert api.patch(PIPELINES + "/1", json=body).status_code == 400
    assert api.patch(PIPELINES + "/1", content=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert emu.cache_clears("web", 1) == 1


@pytest.mark.buddy_emulator(speed=0)
def test_run_response_shape(emu: BuddyEmulator, api: httpx.Client) -> None:
    body = {
        "comment": "airflow:dag=release:run=1",
        "branch": {"name": "release"},
        "to_revision": {"revision": "a3006ad167"},
        "priority": "HIGH",
        "refresh": True,
        "variables": [{"key": "version", "value": "1.0"}, {"key": "pass", "value": "qwerty", "encrypted": True}],
        "some_future_field": {"ignored": True},
    }
    response = api.post(RUNS, json=body)
    assert response.status_code == 200
    assert len(response.content) > 3000  # realistically sized, like the documented samples
    run = response.json()
    assert run["comment"] == "airflow:dag=release:run=1"
    assert run["url"] == f"{emu.url}{RUNS}/{run['id']}"
    assert re.fullmatch(r"https://app\.buddy\.works/acme/web/pipelines/pipeline/1/execution/[0-9a-f]{24}", run["html_url"])
    assert run["triggered_on"] == "API" and run["priority"] == "HIGH" and run["refresh"] is True
    assert run["branch"]["name"] == "release" and run["branch"]["default"] is False
    assert run["to_revision"]["revision"].startswith("a3006ad167") and len(run["to_revision"]["revision"]) == 40
    assert {"id", "name", "email"} <= set(run["creator"])
    assert run["pipeline"]["identifier"] == "build"
    assert {v["key"]: v["value"] for v in run["variables"]} == {"version": "1.0", "pass": "***"}
    assert "qwerty" not in response.text
    first = run["action_executions"][0]
    assert re.fullmatch(r"[0-9a-f]{24}", first["action_execution_id"])
    assert first["action"] == {**first["action"], "id": 10, "name": "Compile", "type": "BUILD"}
    assert first["url"] == f"{run['url']}/action_executions/{first['action_execution_id']}"
    assert api.get(first["url"].removeprefix(emu.url)).json() == first


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"branch": {"name": "a"}, "tag": {"name": "v1"}}, "Only one of branch, tag or pull_request"),
        ({"branch": "main"}, "branch must be an object"),
        ({"tag": {"name": ""}}, "tag must be an object"),
        ({"to_revision": {"sha": "abc"}}, "to_revision must be an object"),
        ({"priority": "URGENT"}, "priority must be one of LOW, NORMAL, HIGH"),
        ({"variables": {"key": "a"}}, "variables must be a list"),
        ({"variables": [{"value": "x"}]}, "variables[0].key"),
        ({"variables": [{"key": "a", "value": 1}]}, "variables[0].value must be a string"),
        ({"actions_to_run": [10, 99]}, "Action 99 not found"),
        ({"actions_to_run": []}, "actions_to_run must be a non-empty list"),
        ({"delay_until": "tomorrow"}, "delay_until is not a valid ISO-8601"),
        ({"comment": 5}, "comment must be a string"),
        ({"refresh": "yes"}, "refresh must be a boolean"),
        ({"clear_cache": 1}, "clear_cache must be a boolean"),
        ([1, 2], "Request body must be a JSON object"),
    ],
)
def test_run_validation(emu: BuddyEmulator, api: httpx.Client, body: Any, message: str) -> None:
    response = api.post(RUNS, json=body)
    assert response.status_code == 400
    assert message in errors(response)
    assert emu.executions("web", 1) == []


def test_run_of_a_disabled_pipeline_is_refused(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="old", disabled=True, disabled_reason="Archived")
    response = api.post(RUNS, json={})
    assert response.status_code == 400 and errors(response) == "Pipeline is disabled: Archived"
    assert buddy_emulator.executions("web", 1) == []


def test_run_with_tag_pull_request_environment_and_package(emu: BuddyEmulator, api: httpx.Client) -> None:
    tagged = api.post(RUNS, json={"tag": {"name": "v1.2"}, "environment": "staging", "package_version": "app:1.2"}).json()
    assert tagged["tag"]["name"] == "v1.2" and "branch" not in tagged
    assert tagged["environment"]["name"] == "staging" and tagged["package_version"]["version"] == "1.2"
    pr = api.post(RUNS, json={"pull_request": {"name": "pull/7"}}).json()
    assert pr["pull_request"]["name"] == "pull/7"
    default = api.post(RUNS, json={}).json()
    assert default["branch"] == {**default["branch"], "name": "main", "default": True}


def test_executions_list_newest_first_and_paginated(emu: BuddyEmulator, api: httpx.Client) -> None:
    ids = [api.post(RUNS, json={"comment": f"run {i}"}).json()["id"] for i in range(5)]
    page = api.get(RUNS, params={"per_page": 2}).json()
    assert [e["id"] for e in page["executions"]] == ids[::-1][:2]
    assert (page["page"], page["page_size"], page["total_page_count"]) == (1, 2, 3)
    assert (page["element_count"], page["total_element_count"]) == (2, 5)
    assert page["url"] == emu.url + RUNS
    last = api.get(RUNS, params={"per_page": 2, "page": 3}).json()
    assert [e["comment"] for e in last["executions"]] == ["run 0"]
    assert [e["id"] for e in api.get(RUNS).json()["executions"]] == ids[::-1]
    assert [e["id"] for e in emu.executions("web", 1)] == ids[::-1]


def test_requests_are_recorded(emu: BuddyEmulator, api: httpx.Client) -> None:
    api.get(PIPELINES, params={"page": "2", "per_page": "5"}, headers={"X-Buddy-Media-Type": "buddy.v1.1.0"})
    api.post(RUNS, json={"comment": "hello"})
    api.get(PIPELINES + "/99")
    first, second, third = emu.requests
    assert (first.method, first.path, first.query, first.status, first.fault) == (
        "GET",
        PIPELINES,
        {"page": "2", "per_page": "5"},
        200,
        None,
    )
    assert first.headers["x-buddy-media-type"] == "buddy.v1.1.0"
    assert first.headers["authorization"] == "Bearer test-token" and first.json is None
    assert second.json == {"comment": "hello"} and second.status == 200
    assert third.status == 404 and first.time <= second.time <= third.time
    assert [r.path for r in emu.requests_to("post", r"/executions$")] == [RUNS]
    assert emu.requests_to("GET", r"/pipelines/\d+$") == [third]
    emu.clear_requests()
    assert emu.requests == []


def test_workspace_projects_and_user(emu: BuddyEmulator, api: httpx.Client) -> None:
    assert api.get("/workspaces/acme").json()["domain"] == "acme"
    assert [p["name"] for p in api.get("/workspaces/acme/projects").json()["projects"]] == ["web"]
    assert api.get("/workspaces/acme/projects/web").json()["status"] == "ACTIVE"
    assert api.get("/user").json()["id"] == 1
    assert api.get("/workspaces/nope").status_code == 404


def test_a_missing_server_package_is_named_with_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ``emulator`` extra's packages, start() says what to install instead of an ImportError deep inside."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(RuntimeError, match=r"not installed \(uvicorn\): pip install 'airflow-provider-buddy\[emulator\]'"):
        BuddyEmulator().start()
