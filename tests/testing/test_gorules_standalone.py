"""GoRules in the standalone emulator: scenario keys, the CLI's banner and the ``/__emulator__/gorules/...``
control endpoints, driven over HTTP only against an emulator subprocess (as a Docker-run or CI-run emulator is)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import DEMO_SCENARIO, ScenarioError, load_scenario
from tests.testing.standalone import Standalone, run_cli, start_standalone

TOKEN = "gr-token"
PROJECT = "aaaaaaaa-0000-4000-8000-000000000001"
DEV, CHECKED, BROKEN = (f"bbbbbbbb-0000-4000-8000-00000000000{n}" for n in (1, 2, 3))
RELEASE = "cccccccc-0000-4000-8000-000000000001"
SCENARIO: dict[str, Any] = {
    "token": TOKEN,
    "gorules": {
        "projects": [
            {
                "name": "fraud",
                "id": PROJECT,
                "environments": [
                    {"key": "dev", "id": DEV, "duration": 2},
                    {"key": "checked", "name": "Checked", "id": CHECKED, "review": True, "duration": 3},
                    {"key": "broken", "id": BROKEN, "fails": True, "error": "S3 bucket rules-prod is not reachable"},
                    "plain",
                ],
                "releases": [
                    {"name": "Fraud rules", "version": "2.0.0", "id": RELEASE, "description": "first"},
                    {"name": "Fraud rules", "version": "2.1.0"},
                ],
                "deploy_answer": "id",
                "comment_visible": False,
            },
            {"name": "defaults"},
        ]
    },
}
DEMO = {
    "project_id": "11111111-1111-4111-8111-111111111111",
    "environment_id": "22222222-2222-4222-8222-222222222202",
    "release_id": "33333333-3333-4333-8333-333333333301",
}
"""The demo scenario's fixed ids, as ``example_dags/gorules_release.py`` takes them in its params."""


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    """One standalone emulator for this module, its clock frozen (``--speed 0``: only /advance moves it)."""
    scenario = tmp_path_factory.mktemp("scenario") / "gorules.json"
    scenario.write_text(json.dumps(SCENARIO))
    emulator = start_standalone("--scenario", str(scenario), "--speed", "0")
    yield emulator
    emulator.stop()


@pytest.fixture
def api(standalone: Standalone) -> Iterator[httpx.Client]:
    with standalone.api(TOKEN) as client:
        yield client


def control(standalone: Standalone, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, standalone.control + path, json=body, timeout=10)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["errors"][0]["message"]
    return message


def new_project(standalone: Standalone, **fields: Any) -> dict[str, Any]:
    """A fresh project through the control endpoint: dev, staging (review), one release."""
    body = {"name": "pricing", "environments": ["dev", {"key": "staging", "review": True}], **fields}
    created = ok(control(standalone, "POST", "/gorules/projects", body))
    release = ok(control(standalone, "POST", f"/gorules/projects/{created['id']}/releases", {"name": "Pricing rules", "version": "1.4.0"}))
    return {**created, "release": release["id"], "env": {e["key"]: e["id"] for e in created["environments"]}}


def test_the_scenario_keys_set_up_the_brms(standalone: Standalone, api: httpx.Client) -> None:
    fraud, defaults = ok(control(standalone, "GET", "/gorules/projects"))[:2]
    assert fraud["id"] == PROJECT and fraud["name"] == "fraud"
    assert [(e["key"], e["name"], e["review"]) for e in fraud["environments"]] == [
        ("dev", "Dev", False),
        ("checked", "Checked", True),
        ("broken", "Broken", False),
        ("plain", "Plain", False),
    ]
    assert [e["id"] for e in fraud["environments"]][:3] == [DEV, CHECKED, BROKEN]
    assert fraud["releases"][0] == {"id": RELEASE, "name": "Fraud rules", "version": "2.0.0"}
    assert (fraud["deploy_answer"], fraud["comment_visible"]) == ("id", False)
    assert [e["key"] for e in defaults["environments"]] == ["dev", "staging", "production"] and defaults["releases"] == []
    assert defaults["deploy_answer"] == "run"
    assert PROJECT in ok(control(standalone, "GET", "/"))["gorules_projects"]

    releases = api.get(f"/projects/{PROJECT}/releases").json()["results"]
    # newest first; version a number beside semanticVersion, as documented (list-releases)
    assert [(r["version"], r["semanticVersion"], r["description"]) for r in releases] == [(2, "2.1.0", ""), (1, "2.0.0", "first")]
    deployed = api.post(f"/projects/{PROJECT}/releases/deploy", json={"releaseId": RELEASE, "environmentId": DEV, "comment": "hidden"})
    assert deployed.status_code == 201 and set(deployed.json()) == {"id"}  # deploy_answer "id"
    run = ok(control(standalone, "GET", f"/gorules/projects/{PROJECT}/runs/{deployed.json()['id']}"))
    assert run["status"] == "in_progress" and run["jobs"][0]["data"] is None  # comment_visible false
    ok(control(standalone, "POST", "/advance", {"seconds": 2.1}))
    assert ok(control(standalone, "GET", f"/gorules/projects/{PROJECT}/runs/{run['id']}"))["status"] == "completed"

    broken = api.post(f"/projects/{PROJECT}/releases/deploy", json={"releaseId": RELEASE, "environmentId": BROKEN}).json()
    ok(control(standalone, "POST", "/advance", {"seconds": 1.1}))
    failed = api.get(f"/projects/{PROJECT}/runs/{broken['id']}").json()
    assert failed["status"] == "failure" and failed["jobs"][0]["event"] == "S3 bucket rules-prod is not reachable"
    assert ok(control(standalone, "GET", f"/gorules/projects/{PROJECT}/deployed")) == {"dev": RELEASE}


def test_add_a_project_and_a_release(standalone: Standalone, api: httpx.Client) -> None:
    fixed = "dddddddd-0000-4000-8000-000000000001"
    created = ok(control(standalone, "POST", "/gorules/projects", {"name": "tax", "project_id": fixed, "environments": ["dev"]}))
    assert created["id"] == fixed and created["releases"] == [] and created["environments"][0]["key"] == "dev"
    release = ok(
        control(standalone, "POST", f"/gorules/projects/{fixed}/releases", {"name": "Tax", "version": "0.1.0", "release_id": "r-1"})
    )
    assert release == {"id": "r-1", "name": "Tax", "version": "0.1.0"}
    assert [r["id"] for r in api.get(f"/projects/{fixed}/releases").json()["results"]] == ["r-1"]
    # the same id replaces the project
    again = ok(control(standalone, "POST", "/gorules/projects", {"name": "tax 2", "id": fixed}))
    assert again["name"] == "tax 2" and again["releases"] == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "environments": [{"key": "dev", "review": "maybe"}]}, "environments.0.review"),
        ({"name": "x", "environments": [{"key": "dev", "duration": -1}]}, "environments.0.duration"),
        ({"name": "x", "environments": ["dev", "dev"]}, "environment keys must be unique"),
        ({"name": "x", "deploy_answer": "sometimes"}, "deploy_answer"),
        ({"name": "x", "releases": [{"name": "no version"}]}, "releases.0.version"),
        ({"id": "a", "project_id": "b"}, '"id" or "project_id"'),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_add_project_errors_name_the_bad_key(standalone: Standalone, body: Any, named: str) -> None:
    message = error(control(standalone, "POST", "/gorules/projects", body), 400)
    assert named in message and message.startswith("invalid GoRules project")


def test_add_release_errors(standalone: Standalone) -> None:
    project = new_project(standalone)
    assert "version" in error(control(standalone, "POST", f"/gorules/projects/{project['id']}/releases", {"name": "x"}), 400)
    assert "tag" in error(
        control(standalone, "POST", f"/gorules/projects/{project['id']}/releases", {"name": "x", "version": "1", "tag": "t"}), 400
    )
    assert error(control(standalone, "POST", "/gorules/projects/nope/releases", {"name": "x", "version": "1"}), 404) == "Project not found"


def test_configure_a_project(standalone: Standalone, api: httpx.Client) -> None:
    project = new_project(standalone)
    configured = ok(control(standalone, "POST", f"/gorules/projects/{project['id']}/configure", {"deploy_answer": "empty"}))
    assert (configured["deploy_answer"], configured["comment_visible"]) == ("empty", True)
    body = {"releaseId": project["release"], "environmentId": project["env"]["dev"], "comment": "shown"}
    assert api.post(f"/projects/{project['id']}/releases/deploy", json=body).json() == {}
    ok(control(standalone, "POST", f"/gorules/projects/{project['id']}/configure", {"deploy_answer": "run", "comment_visible": False}))
    assert api.post(f"/projects/{project['id']}/releases/deploy", json=body).json()["jobs"][0]["data"] is None
    assert "deploy_answer" in error(
        control(standalone, "POST", f"/gorules/projects/{project['id']}/configure", {"deploy_answer": "x"}), 400
    )
    assert "colour" in error(control(standalone, "POST", f"/gorules/projects/{project['id']}/configure", {"colour": 1}), 400)
    assert error(control(standalone, "POST", "/gorules/projects/nope/configure", {}), 404) == "Project not found"


def test_start_list_read_review_and_deployed(standalone: Standalone, api: httpx.Client) -> None:
    project = new_project(standalone)
    runs = f"/gorules/projects/{project['id']}/runs"
    first = ok(control(standalone, "POST", runs, {"release_id": project["release"], "environments": ["dev", "staging"], "comment": "UI"}))
    assert first["createdBy"]["firstName"] == "Jane" and [j["environment"]["key"] for j in first["jobs"]] == ["dev", "staging"]
    second = ok(control(standalone, "POST", runs, {"release_id": project["release"], "environments": [project["env"]["staging"]]}))
    assert second["status"] == "waiting"
    assert [r["id"] for r in ok(control(standalone, "GET", runs))] == [second["id"], first["id"]]  # newest first
    assert api.get(f"/projects/{project['id']}/runs").json()["paginate"]["total"] == 2  # the API sees them too

    rejected = ok(
        control(standalone, "POST", f"{runs}/{second['id']}/review", {"environment": "staging", "approve": False, "comment": "no"})
    )
    assert rejected["status"] == "failure" and rejected["jobs"][0]["reviewedConclusion"] == "rejected"
    assert rejected["jobs"][0]["reviewedComment"] == "no"

    ok(control(standalone, "POST", "/advance", {"seconds": 1.1}))  # dev deployed, staging waits for its review
    assert ok(control(standalone, "GET", f"{runs}/{first['id']}"))["status"] == "waiting"
    assert ok(control(standalone, "GET", f"/gorules/projects/{project['id']}/deployed")) == {"dev": project["release"]}
    approved = ok(control(standalone, "POST", f"{runs}/{first['id']}/review", {"environment": project["env"]["staging"]}))
    assert approved["status"] == "in_progress" and approved["jobs"][1]["reviewedConclusion"] == "approved"
    ok(control(standalone, "POST", "/advance", {"seconds": 1.1}))
    assert ok(control(standalone, "GET", f"{runs}/{first['id']}"))["status"] == "completed"
    deployed = ok(control(standalone, "GET", f"/gorules/projects/{project['id']}/deployed"))
    assert deployed == {"dev": project["release"], "staging": project["release"]}


def test_run_and_review_errors(standalone: Standalone) -> None:
    project = new_project(standalone)
    runs = f"/gorules/projects/{project['id']}/runs"
    assert "release_id" in error(control(standalone, "POST", runs, {"environments": ["dev"]}), 400)
    assert "environments" in error(control(standalone, "POST", runs, {"release_id": project["release"], "environments": []}), 400)
    assert error(control(standalone, "POST", runs, {"release_id": "nope", "environments": ["dev"]}), 404) == "Release not found"
    assert "qa" in error(control(standalone, "POST", runs, {"release_id": project["release"], "environments": ["qa"]}), 404)
    run = ok(control(standalone, "POST", runs, {"release_id": project["release"], "environments": ["dev", "staging"]}))
    review = f"{runs}/{run['id']}/review"
    assert "environment" in error(control(standalone, "POST", review, {"approve": True}), 400)
    assert "approve" in error(control(standalone, "POST", review, {"environment": "dev", "approve": "yes please"}), 400)
    assert "not waiting" in error(control(standalone, "POST", review, {"environment": "dev"}), 400)
    assert "no job" in error(control(standalone, "POST", review, {"environment": "production"}), 404)
    assert error(control(standalone, "GET", f"{runs}/nope"), 404) == "Deployment workflow run not found"
    assert error(control(standalone, "GET", "/gorules/projects/nope/runs"), 404) == "Project not found"
    assert error(control(standalone, "GET", "/gorules/projects/nope/deployed"), 404) == "Project not found"
    assert all("__emulator__" not in r["path"] for r in ok(control(standalone, "GET", "/requests")))  # control calls are not recorded


def test_the_scenario_errors_name_the_bad_key(tmp_path: Path) -> None:
    def problem(gorules: Any) -> str:
        with pytest.raises(ScenarioError) as caught:
            load_scenario({"gorules": gorules})
        return str(caught.value)

    assert "gorules.projects.0.environments.1.review" in problem({"projects": [{"environments": ["dev", {"key": "s", "review": "maybe"}]}]})
    assert "gorules.projects.0.colour" in problem({"projects": [{"colour": "red"}]})
    assert "gorules.projects.0.releases.0.name" in problem({"projects": [{"releases": [{"version": "1"}]}]})
    assert "gorules.projects.0.deploy_answer" in problem({"projects": [{"deploy_answer": "maybe"}]})
    assert "gorules.project" in problem({"project": []})
    assert "environment ids must be unique" in problem({"projects": [{"environments": [{"key": "a", "id": "x"}, {"key": "b", "id": "x"}]}]})
    assert "release ids must be unique" in problem({"projects": [{"releases": [{"name": "a", "version": "1", "id": "r"}] * 2}]})
    assert "project ids must be unique" in problem({"projects": [{"id": "p"}, {"id": "p"}]})

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gorules": {"projects": [{"environments": [{"key": "dev", "duration": "long"}]}]}}))
    process = run_cli("--port", "0", "--scenario", str(bad))
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2 and "gorules.projects.0.environments.0.duration" in err


def test_the_demo_scenario_serves_the_gorules_example_with_fixed_ids() -> None:
    """``example_dags/gorules_release.py`` with the demo's ids: deploy to staging, the run waits for its review,
    a reviewer approves (or the gate cancels), the run completes."""
    example = (Path(__file__).resolve().parents[2] / "example_dags" / "gorules_release.py").read_text()
    assert all(f'"{param}": Param(' in example for param in DEMO)
    scenario = load_scenario(DEMO_SCENARIO)
    (pricing,) = scenario.gorules.projects
    assert pricing.id == DEMO["project_id"] and pricing.releases[0].id == DEMO["release_id"]
    staging = next(e for e in pricing.environments if e.key == "staging")
    assert staging.id == DEMO["environment_id"] and staging.review

    emulator = start_standalone("--scenario", str(DEMO_SCENARIO), "--speed", "0")
    try:
        banner = "\n".join(emulator.banner)
        assert re.search(rf"gorules project 'pricing': {DEMO['project_id']}", banner), banner
        assert f"environment staging: {DEMO['environment_id']} (review required)" in banner
        assert f"release Pricing rules 1.4.0: {DEMO['release_id']}" in banner
        project = f"/projects/{DEMO['project_id']}"
        with emulator.api("demo-token") as api:
            body = {"releaseId": DEMO["release_id"], "environmentId": DEMO["environment_id"], "comment": "Rules release from Airflow"}
            run = api.post(project + "/releases/deploy", json=body).json()
            assert run["status"] == "waiting" and run["jobs"][0]["status"] == "waiting"  # on_approval="succeed" ends here
            ok(httpx.post(f"{emulator.control}/gorules{project}/runs/{run['id']}/review", json={"environment": "staging"}))
            httpx.post(f"{emulator.control}/advance", json={"seconds": 5})
            assert api.get(f"{project}/runs/{run['id']}").json()["status"] == "completed"  # wait_for_rollout succeeds
            rejected = api.post(project + "/releases/deploy", json=body).json()
            cancelled = api.post(f"{project}/runs/{rejected['id']}/cancel", json={"comment": "Rejected at the Airflow gate"})
            assert cancelled.json()["status"] == "cancelled"  # cancel_rollout
    finally:
        out, _ = emulator.stop()
    assert emulator.process.returncode == 0 and "stopped" in out
