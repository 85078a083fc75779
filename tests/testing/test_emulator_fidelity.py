"""The emulator plays what the Buddy and GoRules docs describe (and each reading where they are silent), over plain HTTP:
the identifiers lookup and hidden pipelines, every execution operation, scheduled runs, NOT_EXECUTED, both scope
schemes, the run answer's objects in seed 002's shapes; GoRules environments, releases with numeric versions, and
deploys that make a change request."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import ApiError, BuddyEmulator

WS = "/workspaces/acme"
RUNS = WS + "/projects/web/pipelines/{pipeline}/executions"
FIXTURES = Path(__file__).parent.parent / "fixtures"

pytestmark = pytest.mark.buddy_emulator(speed=0)


def add(emu: BuddyEmulator, pipeline_id: int, *actions: dict[str, Any], **kwargs: Any) -> None:
    emu.add_pipeline(project="web", pipeline_id=pipeline_id, identifier=f"p{pipeline_id}", actions=list(actions), **kwargs)


def start(api: httpx.Client, pipeline_id: int, **body: Any) -> dict[str, Any]:
    response = api.post(RUNS.format(pipeline=pipeline_id), json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def patch(api: httpx.Client, pipeline_id: int, run_id: int, **body: Any) -> httpx.Response:
    return api.patch(RUNS.format(pipeline=pipeline_id) + f"/{run_id}", json=body)


def error(response: httpx.Response) -> str:
    text: str = response.json()["errors"][0]["message"]
    return text


BUILD = {"id": 1, "name": "Build", "type": "BUILD", "duration": 1}


# ---- Buddy ---------------------------------------------------------------------------------------------
def test_identifiers_lookup_and_hidden_pipelines(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    add(buddy_emulator, 1, BUILD)
    add(buddy_emulator, 2, BUILD, hidden=True)
    listed = api.get(WS + "/projects/web/pipelines").json()["pipelines"]
    assert [p["id"] for p in listed] == [1]  # "Pipeline hidden with the visibility settings will not be fetched"
    found = api.get(WS + "/identifiers", params={"project": "web", "pipeline": "p2"})
    assert found.status_code == 200 and found.json()["pipeline_id"] == 2 and found.json()["project_identifier"] == "web"
    assert {"url", "html_url", "domain"} <= set(found.json())
    assert api.get(WS + "/projects/web/pipelines/2").status_code == 200  # by id it is there
    missing = api.get(WS + "/identifiers", params={"project": "web", "pipeline": "nope"})
    assert missing.status_code == 404 and "not found" in error(missing)
    buddy_emulator.configure_buddy(identifiers_missing="empty", identifiers_see_hidden=False)
    for name in ("nope", "p2"):
        empty = api.get(WS + "/identifiers", params={"project": "web", "pipeline": name})
        assert empty.status_code == 200 and "pipeline_id" not in empty.json()
    with pytest.raises(ValueError, match="delayed_status must be one of"):
        buddy_emulator.configure_buddy(delayed_status="QUEUED")


def test_identifiers_need_only_the_workspace_scope_and_new_scope_names_work(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    add(buddy_emulator, 1, BUILD)
    buddy_emulator.scopes = {"WORKSPACE"}
    assert api.get(WS + "/identifiers", params={"project": "web", "pipeline": "p1"}).status_code == 200
    denied = api.get(RUNS.format(pipeline=1))
    assert denied.status_code == 403 and "EXECUTION_INFO (or PIPELINE_READ)" in error(denied)
    buddy_emulator.scopes = {"WORKSPACE", "PIPELINE_READ", "PIPELINE_RUN"}
    run = start(api, 1)
    assert api.get(RUNS.format(pipeline=1) + f"/{run['id']}").status_code == 200


@pytest.mark.parametrize(
    ("action_type", "status", "operation", "wrong"),
    [
        ("APPROVE_VT", "WAITING_FOR_VT_SESSION", "APPROVE_VT", "APPLY"),
        ("SET_VARIABLES", "WAITING_FOR_SETTABLE_VARIABLES", "SET_VARIABLES", "APPLY_VARIABLES"),
    ],
)
def test_new_wait_operations(
    buddy_emulator: BuddyEmulator, api: httpx.Client, action_type: str, status: str, operation: str, wrong: str
) -> None:
    wait: dict[str, Any] = {"id": 2, "name": "Person", "type": action_type, "variables": [{"key": "V", "value": "d"}]}
    add(buddy_emulator, 1, BUILD, wait, BUILD | {"id": 3})
    run = start(api, 1)
    buddy_emulator.advance(1.5)
    assert api.get(RUNS.format(pipeline=1) + f"/{run['id']}").json()["status"] == status
    variables = [{"key": "V", "value": "given"}]
    refused = patch(api, 1, run["id"], operation=wrong, variables=variables)
    assert refused.status_code == 400 and f"use {operation}, not {wrong}" in error(refused)
    body: dict[str, Any] = {"operation": operation}
    if action_type == "SET_VARIABLES":
        assert patch(api, 1, run["id"], operation=operation).status_code == 400  # variables required
        body["variables"] = variables
    taken = patch(api, 1, run["id"], **body)
    assert taken.status_code == 200 and taken.json()["status"] == "INPROGRESS"
    assert taken.json()["action_executions"][1]["status"] == "SUCCESSFUL"


def test_settable_variables_can_be_played_as_apply_variables(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    add(buddy_emulator, 1, {"id": 2, "name": "Set", "type": "SET_VARIABLES", "variables": [{"key": "V"}]})
    buddy_emulator.configure_buddy(settable_variables_operation="APPLY_VARIABLES")
    run = start(api, 1)
    assert patch(api, 1, run["id"], operation="SET_VARIABLES", variables=[{"key": "V", "value": "1"}]).status_code == 400
    assert patch(api, 1, run["id"], operation="APPLY_VARIABLES", variables=[{"key": "V", "value": "1"}]).status_code == 200


@pytest.mark.parametrize("delayed_status", ["ENQUEUED", "INITIAL"])
def test_scheduled_run_waits_then_run_delayed_starts_it(buddy_emulator: BuddyEmulator, api: httpx.Client, delayed_status: str) -> None:
    add(buddy_emulator, 1, BUILD)
    buddy_emulator.configure_buddy(delayed_status=delayed_status)
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    run = start(api, 1, delay_until=later)
    assert run["status"] == delayed_status and run["delay_until"] and run["start_date"] is None
    buddy_emulator.advance(3600)
    assert api.get(RUNS.format(pipeline=1) + f"/{run['id']}").json()["status"] == delayed_status
    started = patch(api, 1, run["id"], operation="RUN_DELAYED")
    assert started.status_code == 200 and started.json()["status"] == "INPROGRESS"
    again = patch(api, 1, run["id"], operation="RUN_DELAYED")
    assert again.status_code == 400 and "not waiting to start" in error(again)


def test_not_executed_outcome(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    add(buddy_emulator, 1, BUILD, outcome="NOT_EXECUTED", enqueued_for=5)
    run = start(api, 1)
    assert run["status"] == "ENQUEUED"
    buddy_emulator.advance(6)
    ended = api.get(RUNS.format(pipeline=1) + f"/{run['id']}").json()
    assert ended["status"] == "NOT_EXECUTED" and ended["finish_date"] is not None
    assert [a["status"] for a in ended["action_executions"]] == ["NOT_EXECUTED"]


def test_run_answer_objects_have_the_seed_shapes(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    add(buddy_emulator, 1, BUILD)
    seed = json.loads((FIXTURES / "seed001_response0.json").read_text())
    run = start(api, 1, environment="staging", package_version="my_app:1.2.3")
    for key in ("environment", "package", "package_version"):
        assert set(run[key]) == set(seed[key]), key
    assert run["environment"]["name"] == "staging" and run["package"]["name"] == "my_app" and run["package_version"]["version"] == "1.2.3"


# ---- GoRules ---------------------------------------------------------------------------------------------
@pytest.fixture
def brms_api(buddy_emulator: BuddyEmulator) -> Any:
    with httpx.Client(base_url=buddy_emulator.url + "/api", headers={"Authorization": f"Bearer {buddy_emulator.token}"}, timeout=5) as c:
        yield c


def project(emu: BuddyEmulator, **kwargs: Any) -> tuple[str, dict[str, str], str]:
    environments = [
        {"key": "dev", "name": "Development"},
        {"key": "staging", "name": "Staging", "review": True},
        {"key": "production", "name": "Production", "change_request": True},
    ]
    created = emu.add_gorules_project("pricing", environments, **kwargs)
    emu.add_release(created["id"], "Pricing rules", "1.3.0")
    release = emu.add_release(created["id"], "Pricing rules", "1.4.0")
    return created["id"], created["environments"], release


def test_environments_and_releases_have_the_documented_shapes(buddy_emulator: BuddyEmulator, brms_api: httpx.Client) -> None:
    project_id, envs, release = project(buddy_emulator)
    documented_env = json.loads((FIXTURES / "gorules_list_environments.json").read_text())[0]
    listed = brms_api.get(f"/projects/{project_id}/environments").json()
    assert isinstance(listed, list) and [e["key"] for e in listed] == ["dev", "staging", "production"]  # a bare array
    assert set(documented_env) - {"accessToken"} <= set(listed[0])
    assert [e["approvalMode"] for e in listed] == ["none", "require_one_per_team", "require_any"]
    assert [e["workflowOrder"] for e in listed] == [1, 2, 3]
    documented_release = json.loads((FIXTURES / "gorules_list_releases.json").read_text())["results"][0]
    releases = brms_api.get(f"/projects/{project_id}/releases").json()["results"]
    assert {"version", "semanticVersion", "changeRequests"} <= set(releases[0]) <= set(documented_release) | {"projectId"}
    assert [(r["version"], r["semanticVersion"]) for r in releases] == [(2, "1.4.0"), (1, "1.3.0")]
    one = brms_api.get(f"/projects/{project_id}/releases/{release}").json()
    assert one["id"] == release and one["changeRequests"] == []
    deployed = brms_api.post(f"/projects/{project_id}/releases/deploy", json={"releaseId": release, "environmentId": envs["dev"]})
    assert deployed.json()["release"]["version"] == "1.4.0"  # a run names its release with a text version (seed 003)
    buddy_emulator.advance(2)
    dev = brms_api.get(f"/projects/{project_id}/environments").json()[0]
    assert dev["release"]["id"] == release and (dev["release"]["version"], dev["release"]["semanticVersion"]) == (2, "1.4.0")


@pytest.mark.parametrize("answer", ["run", "id", "empty"])
def test_deploy_to_an_environment_needing_approval_makes_a_change_request(
    buddy_emulator: BuddyEmulator, brms_api: httpx.Client, answer: str
) -> None:
    project_id, envs, release = project(buddy_emulator, deploy_answer=answer)
    deployed = brms_api.post(f"/projects/{project_id}/releases/deploy", json={"releaseId": release, "environmentId": envs["production"]})
    assert deployed.status_code == 201
    assert brms_api.get(f"/projects/{project_id}/runs").json()["results"] == []  # no run
    [request] = brms_api.get(f"/projects/{project_id}/releases/{release}").json()["changeRequests"]
    assert request["status"] == "pending" and request["environment"] == {"id": envs["production"], "name": "Production"}
    expected = {"run": request["id"], "id": request["id"], "empty": None}[answer]
    assert deployed.json().get("id") == expected
    production = brms_api.get(f"/projects/{project_id}/environments").json()[2]
    assert [cr["id"] for cr in production["changeRequests"]] == [request["id"]]
    approved = buddy_emulator.review_change_request(project_id, request["id"])
    assert approved["status"] == "completed" and approved["runId"]
    [run] = brms_api.get(f"/projects/{project_id}/runs").json()["results"]
    assert run["id"] == approved["runId"] and run["jobs"][0]["environmentId"] == envs["production"]
    with pytest.raises(ApiError, match="not pending"):
        buddy_emulator.review_change_request(project_id, request["id"], approve=False)
