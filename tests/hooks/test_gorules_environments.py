"""GoRulesHook against the emulated BRMS: environments (one bare-array call), releases with a numeric version beside
semanticVersion (list_releases used to fail on them), get_release with its change requests, and a deploy answered
with a change request instead of a run (sync and async)."""

from __future__ import annotations

import pytest

from airflow_provider_buddy.hooks._gorules_api import with_api_root
from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.testing import BuddyEmulator
from tests.conftest import fast_settings
from tests.gorules_support import Brms, brms_fixture, gorules_hook_fixture  # noqa: F401

APPROVED_ENVIRONMENTS = [{"key": "dev", "name": "Development"}, {"key": "production", "name": "Production", "change_request": True}]


def test_list_environments(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    environments = gorules_hook.list_environments(brms.project_id)
    assert [(e.key, e.id) for e in environments] == list(brms.env.items())
    staging = next(e for e in environments if e.key == "staging")
    assert staging.name == "Staging" and staging.approval_mode == "require_one_per_team" and staging.required_reviewers is True
    assert staging.release is None and staging.workflow_order == 3
    assert len(emulator.requests_to("GET", r"/environments$")) == 1  # one call, no paging


async def test_async_list_environments_and_get_release(brms: Brms, emulator: BuddyEmulator) -> None:
    brms.start("dev")
    emulator.advance(3)
    hook = GoRulesHook(settings=with_api_root(fast_settings(emulator.url, account=None)))
    try:
        dev = (await hook.alist_environments(brms.project_id))[0]
        release = await hook.aget_release(brms.project_id, brms.release_id)
    finally:
        await hook.aclose()
    assert dev.release is not None and dev.release.id == brms.release_id and dev.release.label == "Pricing rules 1.4.0"
    assert release.version == 1 and release.semantic_version == "1.4.0" and release.change_requests == []


def test_releases_with_numeric_versions_read(gorules_hook: GoRulesHook, brms: Brms, emulator: BuddyEmulator) -> None:
    emulator.add_release(brms.project_id, "Pricing rules", "1.5.0")
    releases = gorules_hook.list_releases(brms.project_id)
    assert [(r.version, r.semantic_version, r.label) for r in releases] == [
        (2, "1.5.0", "Pricing rules 1.5.0"),
        (1, "1.4.0", "Pricing rules 1.4.0"),
    ]


@pytest.mark.parametrize("answer", ["run", "id", "empty"])
def test_deploy_that_makes_a_change_request(gorules_hook: GoRulesHook, emulator: BuddyEmulator, answer: str) -> None:
    created = emulator.add_gorules_project("approved", APPROVED_ENVIRONMENTS, deploy_answer=answer)
    release = emulator.add_release(created["id"], "Rules", "2.0.0")
    result = gorules_hook.deploy_release(created["id"], release, created["environments"]["production"], "ship it")
    [request] = gorules_hook.get_release(created["id"], release).change_requests
    assert request.is_pending and request.targets(created["environments"]["production"])
    assert result.run is None
    if answer == "run":  # the emulator answers the change request object itself
        assert result.change_request is not None and result.change_request.id == request.id
    else:
        assert result.change_request is None and result.run_id == ({"id": request.id, "empty": None}[answer])
