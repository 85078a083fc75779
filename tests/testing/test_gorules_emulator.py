"""The emulated GoRules BRMS over real HTTP: auth, runs with jobs per environment on the emulated clock,
review waits, cancel with comment, failure, deploy answers, paging, and both URL layouts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import ApiError, BuddyEmulator
from tests.gorules_support import ENVIRONMENTS, Brms, make_brms

TOKEN = "gr-token"


@pytest.fixture
def frozen() -> Iterator[BuddyEmulator]:
    """An emulator whose clock only moves with advance()."""
    with BuddyEmulator(token=TOKEN, speed=0) as emu:
        yield emu


@pytest.fixture
def brms(frozen: BuddyEmulator) -> Brms:
    return make_brms(frozen)


@pytest.fixture
def api(frozen: BuddyEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=frozen.url + "/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5) as client:
        yield client


def deploy(api: httpx.Client, brms: Brms, env: str, **extra: Any) -> httpx.Response:
    body = {"releaseId": brms.release_id, "environmentId": brms.env[env], **extra}
    return api.post(f"/projects/{brms.project_id}/releases/deploy", json=body)


def test_token_is_required(frozen: BuddyEmulator, brms: Brms) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.get(f"{frozen.url}/api/projects/{brms.project_id}/runs", headers=headers)
        assert response.status_code == 401 and response.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_deploy_runs_one_job_on_the_clock(api: httpx.Client, brms: Brms, frozen: BuddyEmulator) -> None:
    response = deploy(api, brms, "dev", comment="nightly")
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "in_progress" and run["releaseId"] == brms.release_id and run["projectId"] == brms.project_id
    assert run["release"] == {"id": brms.release_id, "name": "Pricing rules", "version": "1.4.0"}
    [job] = run["jobs"]
    assert job["environment"] == {"id": brms.env["dev"], "name": "Development", "key": "dev"}
    assert job["status"] == "in_progress" and job["data"] == {"comment": "nightly"} and job["deploymentWorkflowRunId"] == run["id"]
    frozen.advance(1.9)
    assert api.get(f"/projects/{brms.project_id}/runs/{run['id']}").json()["status"] == "in_progress"
    frozen.advance(0.2)
    done = api.get(f"/projects/{brms.project_id}/runs/{run['id']}").json()
    assert done["status"] == "completed" and done["completedAt"] and done["jobs"][0]["status"] == "completed"
    assert frozen.gorules_deployed(brms.project_id) == {"dev": brms.release_id}
    second = deploy(api, brms, "dev").json()
    assert second["jobs"][0]["previousRelease"]["id"] == brms.release_id and second["jobs"][0]["data"] is None


def test_review_wait_then_approve(brms: Brms, frozen: BuddyEmulator) -> None:
    run = brms.start("dev", "staging", "production")
    assert [j["environment"]["key"] for j in run["jobs"]] == ["dev", "staging", "production"]
    frozen.advance(2.5)
    waiting = brms.run(run["id"])
    assert waiting["status"] == "waiting"
    assert [j["status"] for j in waiting["jobs"]] == ["completed", "waiting", "not_started"]
    with pytest.raises(ApiError, match="not waiting"):
        frozen.review_in_gorules(brms.project_id, run["id"], "production")
    reviewed = frozen.review_in_gorules(brms.project_id, run["id"], "staging", comment="looks right")
    job = reviewed["jobs"][1]
    assert reviewed["status"] == "in_progress" and job["reviewedConclusion"] == "approved" and job["reviewedComment"] == "looks right"
    assert job["reviewedBy"]["firstName"] == "Jane" and job["reviewedAt"]
    frozen.advance(2.5)
    assert brms.run(run["id"])["status"] == "waiting"  # production's review now
    frozen.review_in_gorules(brms.project_id, run["id"], "production")
    frozen.advance(2.5)
    assert brms.run(run["id"])["status"] == "completed"


def test_rejected_review_fails_the_run(brms: Brms, frozen: BuddyEmulator) -> None:
    run = brms.start("staging")
    assert run["status"] == "waiting"
    rejected = frozen.review_in_gorules(brms.project_id, run["id"], "staging", approve=False, comment="wrong thresholds")
    assert rejected["status"] == "failure" and rejected["jobs"][0]["status"] == "rejected"
    assert rejected["jobs"][0]["reviewedConclusion"] == "rejected"


def test_failing_environment_fails_the_run(brms: Brms, frozen: BuddyEmulator) -> None:
    run = brms.start("dev", "broken", "production")
    frozen.advance(5)
    failed = brms.run(run["id"])
    assert failed["status"] == "failure"
    assert [j["status"] for j in failed["jobs"]] == ["completed", "failure", "not_started"]
    assert failed["jobs"][1]["event"] == "S3 bucket rules-prod is not reachable"


@pytest.mark.parametrize("body", [None, {}, {"comment": ""}, {"comment": 5}])
def test_cancel_requires_a_comment(api: httpx.Client, brms: Brms, body: Any) -> None:
    run = brms.start("slow")
    response = api.post(f"/projects/{brms.project_id}/runs/{run['id']}/cancel", json=body)
    assert response.status_code == 400 and "comment" in response.json()["message"]
    assert brms.run(run["id"])["status"] == "in_progress"


def test_cancel_going_run_only(api: httpx.Client, brms: Brms, frozen: BuddyEmulator) -> None:
    run = brms.start("dev", "staging")
    response = api.post(f"/projects/{brms.project_id}/runs/{run['id']}/cancel", json={"comment": "release pulled"})
    cancelled = response.json()
    assert response.status_code == 200 and cancelled["status"] == "cancelled"
    assert cancelled["cancelledComment"] == "release pulled" and cancelled["cancelledBy"]["lastName"] == "Bot"
    assert cancelled["cancelledById"] == cancelled["cancelledBy"]["id"]
    assert {j["status"] for j in cancelled["jobs"]} == {"cancelled"}
    again = api.post(f"/projects/{brms.project_id}/runs/{run['id']}/cancel", json={"comment": "again"})
    assert again.status_code == 400 and "cancelled" in again.json()["message"]


@pytest.mark.parametrize(("answer", "expected"), [("id", {"id"}), ("empty", set())])
def test_deploy_answer_shapes(api: httpx.Client, frozen: BuddyEmulator, answer: str, expected: set[str]) -> None:
    brms = make_brms(frozen, deploy_answer=answer)
    response = deploy(api, brms, "dev")
    assert response.status_code == 201 and set(response.json()) == expected
    [run] = frozen.gorules_runs(brms.project_id)
    assert run["releaseId"] == brms.release_id


def test_deploy_validation_and_not_found(api: httpx.Client, brms: Brms) -> None:
    assert api.post(f"/projects/{brms.project_id}/releases/deploy", json={"environmentId": brms.env["dev"]}).status_code == 400
    missing_release = api.post(f"/projects/{brms.project_id}/releases/deploy", json={"releaseId": "nope", "environmentId": brms.env["dev"]})
    assert missing_release.status_code == 404 and missing_release.json()["message"] == "Release not found"
    assert deploy(api, brms, "dev", environmentId="nope").status_code == 404
    assert api.get("/projects/nope/runs").status_code == 404
    assert api.get(f"/projects/{brms.project_id}/runs/nope").json() == {"statusCode": 404, "message": "Deployment workflow run not found"}


def test_runs_and_releases_are_paginated_newest_first(api: httpx.Client, brms: Brms, frozen: BuddyEmulator) -> None:
    ids = [brms.start("dev")["id"] for _ in range(3)]
    first = api.get(f"/projects/{brms.project_id}/runs", params={"page": 1, "perPage": 2}).json()
    second = api.get(f"/projects/{brms.project_id}/runs", params={"page": 2, "perPage": 2}).json()
    assert [r["id"] for r in first["results"] + second["results"]] == ids[::-1]
    assert first["paginate"] == {"current": 1, "from": 1, "to": 2, "total": 3, "pageSize": 2, "lastPage": 2}
    assert second["paginate"]["to"] == 3
    frozen.add_release(brms.project_id, "Pricing rules", "1.5.0")
    releases = api.get(f"/projects/{brms.project_id}/releases").json()
    assert [r["semanticVersion"] for r in releases["results"]] == ["1.5.0", "1.4.0"] and releases["paginate"]["total"] == 2
    assert api.get("/projects").json()["results"][0]["id"] == brms.project_id


def test_routes_under_an_api_base_path() -> None:
    with BuddyEmulator(token=TOKEN, speed=0, base_path="/api") as emu:
        brms = make_brms(emu)
        assert emu.url.endswith("/api")
        response = httpx.get(f"{emu.url}/projects/{brms.project_id}/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200 and response.json()["results"] == []


def test_project_set_up_is_checked(frozen: BuddyEmulator) -> None:
    with pytest.raises(ValueError, match="deploy_answer"):
        frozen.add_gorules_project("x", ENVIRONMENTS, deploy_answer="sometimes")
    with pytest.raises(ValueError, match="unique"):
        frozen.add_gorules_project("x", ["dev", "dev"])


def test_seeded_ids_are_the_same_in_every_run() -> None:
    """``seed_gorules_ids``: the same calls give the same ids (projects, environments, releases, runs and jobs, the API's
    deploys included), so a fault schedule keyed by request paths is reproducible; another seed or none gives others."""

    def ids(seed: int | None) -> list[str]:
        with BuddyEmulator(token=TOKEN, speed=0) as emu:
            emu.seed_gorules_ids(seed)
            brms = make_brms(emu)
            with httpx.Client(base_url=emu.url + "/api", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5) as client:
                deployed = deploy(client, brms, "dev").json()
            started = brms.start("dev", "qa")
            return [
                brms.project_id,
                *brms.env.values(),
                brms.release_id,
                deployed["id"],
                deployed["jobs"][0]["id"],
                started["id"],
                *(job["id"] for job in started["jobs"]),
            ]

    first = ids(7)
    assert ids(7) == first and len(set(first)) == len(first) and all(len(i) == 36 and i[14] == "4" for i in first)
    assert not set(ids(8)) & set(first) and not set(ids(None)) & set(first)
