"""GoRulesHook over real HTTP against the emulator: every method sync and async, URLs, answers of every
documented (and undocumented) shape, errors, retry rules, comment checks, token hygiene, models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_buddy.exceptions import (
    GoRulesApiError,
    GoRulesAuthenticationError,
    GoRulesConfigurationError,
    GoRulesConnectionError,
    GoRulesNotFoundError,
    GoRulesPermissionError,
    GoRulesServerError,
)
from airflow_provider_buddy.hooks._gorules_api import gorules_api_url, with_api_root
from airflow_provider_buddy.hooks.gorules import GoRulesHook, gorules_settings
from airflow_provider_buddy.models import StatusGroup
from airflow_provider_buddy.models.gorules import DeployResult, Run, run_status_group
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.conftest import TOKEN, fast_settings
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture, gorules_hook_fixture, make_brms  # noqa: F401

SEED_RUN = json.loads((Path(__file__).parent.parent / "fixtures" / "gorules_seed003_run.json").read_text())


class FakeConn:
    """The fields of an Airflow connection the settings reader uses."""

    def __init__(self, host: str | None, password: str | None = TOKEN, port: int | None = None, extra: Any = None) -> None:
        self.conn_id, self.host, self.password, self.port, self.extra, self.login = "gorules_default", host, password, port, extra, None


# ---- connection and URLs -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("acme.gorules.io", "https://acme.gorules.io/api"),
        ("https://acme.gorules.io/", "https://acme.gorules.io/api"),
        ("https://acme.gorules.io/api", "https://acme.gorules.io/api"),
        ("https://acme.gorules.io/api/", "https://acme.gorules.io/api"),
        ("https://brms.example.com/rules", "https://brms.example.com/rules/api"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api"),
    ],
)
def test_base_url_gets_api_once(host: str, expected: str) -> None:
    assert gorules_settings(FakeConn(host)).base_url == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("conn", "needle"),
    [
        (FakeConn(""), "host (BRMS URL) is empty"),
        (FakeConn("https://acme.gorules.io", password=""), "token (password field) is empty"),
        (FakeConn("http://brms.example.com"), "plain http://"),
        (FakeConn("https://acme.gorules.io", extra={"timeout": "soon"}), "'timeout' must be a number"),
    ],
)
def test_bad_connections_name_the_field(conn: FakeConn, needle: str) -> None:
    with pytest.raises(GoRulesConfigurationError, match="gorules_default") as info:
        gorules_settings(conn)  # type: ignore[arg-type]
    assert needle in str(info.value) and TOKEN not in str(info.value)


def test_connection_from_the_environment_and_test_button(emulator: BuddyEmulator, gorules_conn: str, brms: Brms) -> None:
    hook = GoRulesHook()
    ok, message = hook.test_connection()
    assert ok and emulator.url + "/api" in message and "at least one project" in message
    assert emulator.requests_to("GET", r"^/api/projects$")[-1].query == {"page": "1", "perPage": "1"}
    emulator.token = "rotated"
    ok, message = GoRulesHook().test_connection()
    assert not ok and "HTTP 401" in message and "personal access token" in message and TOKEN not in message


def test_ui_fields() -> None:
    behaviour = GoRulesHook.get_ui_field_behaviour()
    assert "login" in behaviour["hidden_fields"] and behaviour["relabeling"]["host"] == "BRMS URL"
    assert GoRulesHook.conn_type == "gorules" and GoRulesHook.default_conn_name == "gorules_default"


# ---- runs ----------------------------------------------------------------------------------------
async def test_get_and_list_runs_sync_and_async(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    ids = [brms.start("dev")["id"] for _ in range(5)]
    emulator.clear_requests()
    runs = gorules_hook.list_runs(brms.project_id, per_page=2)
    assert [r.id for r in runs] == ids[::-1]
    pages = emulator.requests_to("GET", rf"/api/projects/{brms.project_id}/runs$")
    assert [r.query for r in pages] == [{"page": str(n), "perPage": "2"} for n in (1, 2, 3)]
    assert [r.id for r in await gorules_hook.alist_runs(brms.project_id, per_page=2)] == ids[::-1]
    assert len(gorules_hook.list_runs(brms.project_id, per_page=2, max_items=3)) == 3
    run = gorules_hook.get_run(brms.project_id, ids[0])
    arun = await gorules_hook.aget_run(brms.project_id, ids[0])
    assert run == arun and run.release_label == "Pricing rules 1.4.0" and run.jobs[0].environment_label == "Development (dev)"
    assert {r.headers["authorization"] for r in emulator.requests} == {f"Bearer {TOKEN}"}
    await gorules_hook.aclose()


async def test_cancel_run_sync_and_async(gorules_hook: GoRulesHook, brms: Brms) -> None:
    first, second = brms.start("slow")["id"], brms.start("slow")["id"]
    cancelled = gorules_hook.cancel_run(brms.project_id, first, "  release pulled  ")
    assert cancelled.status == "cancelled" and cancelled.cancelled_comment == "release pulled"
    assert cancelled.status_group is StatusGroup.CANCELLED and cancelled.cancelled_by is not None
    acancelled = await gorules_hook.acancel_run(brms.project_id, second, "also pulled")
    assert acancelled.cancelled_comment == "also pulled"
    assert [r.json for r in brms.cancels(first)] == [{"comment": "release pulled"}]
    await gorules_hook.aclose()


@pytest.mark.parametrize("comment", [None, "", "   ", 7])
async def test_cancel_without_comment_is_refused_before_sending(gorules_hook: GoRulesHook, brms: Brms, comment: Any) -> None:
    run_id = brms.start("slow")["id"]
    with pytest.raises(GoRulesConfigurationError, match="comment is required"):
        gorules_hook.cancel_run(brms.project_id, run_id, comment)
    with pytest.raises(GoRulesConfigurationError, match="comment is required"):
        await gorules_hook.acancel_run(brms.project_id, run_id, comment)
    assert brms.cancels(run_id) == [] and brms.run(run_id)["status"] == "in_progress"


# ---- deploy and releases -------------------------------------------------------------------------
@pytest.mark.parametrize(("answer", "has_run", "has_id"), [("run", True, True), ("id", False, True), ("empty", False, False)])
async def test_deploy_release_reads_every_answer_shape(
    emulator: BuddyEmulator, gorules_hook: GoRulesHook, answer: str, has_run: bool, has_id: bool
) -> None:
    brms = make_brms(emulator, deploy_answer=answer)
    result = gorules_hook.deploy_release(brms.project_id, brms.release_id, brms.env["dev"], "from Airflow")
    aresult = await gorules_hook.adeploy_release(brms.project_id, brms.release_id, brms.env["dev"])
    assert (result.run is not None) is has_run and (result.run_id is not None) is has_id
    assert (aresult.run_id is not None) is has_id
    sent = [r.json for r in brms.deploys()]
    assert sent == [
        {"releaseId": brms.release_id, "environmentId": brms.env["dev"], "comment": "from Airflow"},
        {"releaseId": brms.release_id, "environmentId": brms.env["dev"]},
    ]
    if has_id:
        assert result.run_id == emulator.gorules_runs(brms.project_id)[1]["id"]
    await gorules_hook.aclose()


async def test_list_releases(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    emulator.add_release(brms.project_id, "Pricing rules", "1.5.0", description="new discount table")
    releases = gorules_hook.list_releases(brms.project_id, per_page=1)
    assert [(r.version, r.semantic_version) for r in releases] == [(2, "1.5.0"), (1, "1.4.0")]
    assert releases[0].description == "new discount table"
    assert [r.id for r in await gorules_hook.alist_releases(brms.project_id)] == [r.id for r in releases]
    await gorules_hook.aclose()


@pytest.mark.parametrize(("field", "value"), [("project_id", ""), ("release_id", " "), ("environment_id", None)])
def test_deploy_ids_are_checked_before_sending(gorules_hook: GoRulesHook, brms: Brms, field: str, value: Any) -> None:
    args = {"project_id": brms.project_id, "release_id": brms.release_id, "environment_id": brms.env["dev"], field: value}
    with pytest.raises(GoRulesConfigurationError, match=field):
        gorules_hook.deploy_release(**args)
    assert brms.deploys() == []


# ---- errors, retries, secrets --------------------------------------------------------------------
def test_error_mapping(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    with pytest.raises(GoRulesNotFoundError, match="Deployment workflow run not found") as missing:
        gorules_hook.get_run(brms.project_id, "nope")
    assert missing.value.http_status == 404 and missing.value.resource == "run"
    emulator.add_fault(Fault(kind="status", status=403, body={"statusCode": 403, "message": "Forbidden resource"}, path="/runs$"))
    with pytest.raises(GoRulesPermissionError, match="Forbidden resource.*no permission for this project or call.*Releases"):
        gorules_hook.list_runs(brms.project_id)
    run_id = brms.start("dev")["id"]
    emulator.advance(5)
    with pytest.raises(GoRulesApiError, match="HTTP 400.*Only in-progress or waiting runs"):
        gorules_hook.cancel_run(brms.project_id, run_id, "too late")


def test_rejected_token_never_shows(brms: Brms, emulator: BuddyEmulator) -> None:
    secret = "gr-SECRET-token-1234"
    hook = GoRulesHook(settings=with_api_root(fast_settings(emulator.url, token=secret, account=None)))
    emulator.add_fault(Fault(kind="status", status=500, body={"message": f"echo {secret}"}, times=None))
    with pytest.raises(Exception) as failure:
        hook.get_run(brms.project_id, "x")
    assert secret not in str(failure.value) and secret not in repr(hook) and secret not in repr(hook.settings)
    emulator.clear_faults()
    with pytest.raises(GoRulesAuthenticationError) as rejected:
        hook.get_run(brms.project_id, "x")
    assert "only works on the BRMS instance that issued it" in str(rejected.value) and secret not in str(rejected.value)


def test_reads_retry_408_429_5xx_and_drops(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    run_id = brms.start("dev")["id"]
    path = rf"/runs/{run_id}$"
    emulator.add_fault(Fault(kind="status", status=408, method="GET", path=path))
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "0"}, method="GET", path=path))
    emulator.add_fault(Fault(kind="drop", method="GET", path=path))
    assert gorules_hook.get_run(brms.project_id, run_id).id == run_id
    assert len(emulator.requests_to("GET", path)) == 4


def test_deploy_is_never_sent_twice_once_it_may_have_arrived(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="drop", method="POST", path="/releases/deploy$", when="after"))
    with pytest.raises(GoRulesConnectionError, match="not sent again"):
        gorules_hook.deploy_release(brms.project_id, brms.release_id, brms.env["dev"])
    assert len(brms.deploys()) == 1 and len(emulator.gorules_runs(brms.project_id)) == 1
    emulator.add_fault(Fault(kind="status", status=503, method="POST", path="/releases/deploy$"))
    with pytest.raises(GoRulesServerError, match="HTTP 503"):
        gorules_hook.deploy_release(brms.project_id, brms.release_id, brms.env["dev"])
    assert len(brms.deploys()) == 2


def test_cancel_is_retried_only_when_rejected(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    run_id = brms.start("slow")["id"]
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "0"}, method="POST", path="/cancel$"))
    assert gorules_hook.cancel_run(brms.project_id, run_id, "stop").status == "cancelled"
    assert len(brms.cancels(run_id)) == 2


# ---- models --------------------------------------------------------------------------------------
def test_documented_run_example_parses() -> None:
    run = Run.model_validate(SEED_RUN)
    assert run.status == "in_progress" and run.status_group is StatusGroup.RUNNING and run.run_version == "v2"
    job = run.jobs[0]
    assert job.status == "not_started" and job.order == 123 and job.reviewed_conclusion == "approved"
    assert job.environment is not None and job.environment.key == "<string>" and job.data == "<unknown>"
    assert run.created_by is not None and run.created_by.first_name == "<string>"


def test_unknown_statuses_and_fields_are_kept() -> None:
    data = {
        **SEED_RUN,
        "status": "rolling_back",
        "brandNew": {"x": 1},
        "jobs": [{**SEED_RUN["jobs"][0], "status": "deploying", "order": "2"}],
    }
    run = Run.model_validate(data)
    assert run.status == "rolling_back" and run.status_group is StatusGroup.UNKNOWN and not run.is_finished
    assert run.jobs[0].status == "deploying" and run.jobs[0].order == 2
    assert Run.model_validate({"id": 5, "jobs": None}).id == "5"


@pytest.mark.parametrize(
    ("status", "group"),
    [
        ("completed", StatusGroup.SUCCESS),
        ("failure", StatusGroup.FAILURE),
        ("cancelled", StatusGroup.CANCELLED),
        ("in_progress", StatusGroup.RUNNING),
        ("WAITING", StatusGroup.WAITING_FOR_PERSON),
        (None, StatusGroup.UNKNOWN),
        ("new", StatusGroup.UNKNOWN),
    ],
)
def test_status_groups(status: str | None, group: StatusGroup) -> None:
    assert run_status_group(status) is group


@pytest.mark.parametrize(
    ("answer", "run_id", "is_run"),
    [
        (SEED_RUN, SEED_RUN["id"], True),
        ({"run": SEED_RUN}, SEED_RUN["id"], True),
        ({"id": "r1"}, "r1", False),
        ({"runId": "r2", "changeRequestId": "c"}, "r2", False),
        ({}, None, False),
        (None, None, False),
        ([1], None, False),
    ],
)
def test_deploy_answer_reading(answer: Any, run_id: str | None, is_run: bool) -> None:
    result = DeployResult.from_api(answer)
    assert result.run_id == run_id and (result.run is not None) is is_run


def test_api_url_helper() -> None:
    assert gorules_api_url("https://x.gorules.io") == "https://x.gorules.io/api"
    assert gorules_api_url("https://x.gorules.io/API") == "https://x.gorules.io/API"
