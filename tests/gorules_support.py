"""GoRules test support: a BRMS project on the shared emulator, the ``gorules_default`` connection, a fast hook.

Import the fixtures into a test module (``from tests.gorules_support import brms_fixture  # noqa: F401``);
they are used under their ``name=`` (``brms``, ``gorules_conn``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_buddy.hooks._gorules_api import with_api_root
from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.testing import BuddyEmulator
from tests.conftest import FAST_EXTRA, TOKEN, fast_settings

ENVIRONMENTS = [
    {"key": "dev", "name": "Development", "duration": 2},
    {"key": "qa", "name": "QA", "duration": 20},
    {"key": "staging", "name": "Staging", "review": True, "duration": 2},
    {"key": "production", "name": "Production", "review": True, "duration": 2},
    {"key": "broken", "name": "Broken", "duration": 2, "fails": True, "error": "S3 bucket rules-prod is not reachable"},
    {"key": "slow", "name": "Slow", "duration": 99999},
]


@dataclass
class Brms:
    """
    One emulated BRMS project with environments and a release.

    :param emulator: the running emulator.
    :param project_id: the project's id.
    :param env: environment ids by key.
    :param release_id: a published release ("Pricing rules 1.4.0").
    """

    emulator: BuddyEmulator
    project_id: str
    env: dict[str, str]
    release_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self, *keys: str, comment: str | None = None) -> dict[str, Any]:
        """Start a run as from the BRMS UI over the environments ``keys``."""
        return self.emulator.start_gorules_run(self.project_id, self.release_id, list(keys), comment)

    def run(self, run_id: str) -> dict[str, Any]:
        """A run as the API shows it."""
        return self.emulator.gorules_run(self.project_id, run_id)

    def deploys(self) -> list[Any]:
        """The deploy POSTs the emulator received."""
        return self.emulator.requests_to("POST", r"/releases/deploy$")

    def cancels(self, run_id: str) -> list[Any]:
        """The cancel POSTs for ``run_id`` the emulator received."""
        return self.emulator.requests_to("POST", rf"/runs/{run_id}/cancel$")


def make_brms(emulator: BuddyEmulator, **project: Any) -> Brms:
    """Add a project ("pricing") with :data:`ENVIRONMENTS` and one release."""
    created = emulator.add_gorules_project("pricing", ENVIRONMENTS, **project)
    release_id = emulator.add_release(created["id"], "Pricing rules", "1.4.0")
    return Brms(emulator, created["id"], created["environments"], release_id)


@pytest.fixture(name="brms")
def brms_fixture(emulator: BuddyEmulator) -> Brms:
    """A BRMS project on the test's emulator."""
    return make_brms(emulator)


def gorules_connection_json(url: str, token: str = TOKEN, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for the emulated BRMS (the URL without ``/api``: the hook adds it)."""
    return json.dumps({"conn_type": "gorules", "host": url, "password": token, "extra": {**FAST_EXTRA, **extra}})


@pytest.fixture(name="gorules_conn")
def gorules_conn_fixture(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``gorules_default`` pointed at the emulator, through the environment as a user would set it."""
    monkeypatch.setenv("AIRFLOW_CONN_GORULES_DEFAULT", gorules_connection_json(emulator.url))
    return "gorules_default"


@pytest.fixture(name="gorules_hook")
def gorules_hook_fixture(emulator: BuddyEmulator) -> Iterator[GoRulesHook]:
    """A hook on the emulator with tiny backoffs."""
    hook = GoRulesHook(settings=with_api_root(fast_settings(emulator.url, account=None)))
    yield hook
    hook.close()
