"""The Python API of the emulated GoRules BRMS, mixed into :class:`BuddyEmulator` (one server serves both).

Example::

    with BuddyEmulator(token="t", speed=20.0) as emu:
        project = emu.add_gorules_project("pricing", environments=["dev", {"key": "staging", "review": True}])
        release = emu.add_release(project["id"], "Pricing rules", "1.4.0")
        # GoRules connection: host=emu.url (the client adds /api), password="t"
        ...
        emu.review_in_gorules(project["id"], run_id, "staging")           # a reviewer approves in the BRMS UI
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_buddy.testing._specs import validate
from airflow_provider_buddy.testing.gorules.specs import (
    DEFAULT_ENVIRONMENTS,
    GoRulesProjectSpec,
    GoRulesSettings,
    ReleaseSpec,
)
from airflow_provider_buddy.testing.gorules.state import GoRulesState


class GoRulesEmulatorMixin:
    """GoRules BRMS projects, releases and runs on the emulator (its clock, lock and token are shared)."""

    _gorules: GoRulesState

    @property
    def gorules(self) -> GoRulesState:
        """The emulated BRMS's state (for advanced use; the methods below cover the usual needs)."""
        return self._gorules

    def add_gorules_project(
        self,
        name: str = "rules",
        environments: Sequence[Mapping[str, Any] | str] = DEFAULT_ENVIRONMENTS,
        *,
        project_id: str | None = None,
        deploy_answer: str = "run",
        comment_visible: bool = True,
    ) -> dict[str, Any]:
        """
        Create a BRMS project (as a scenario's ``gorules.projects`` entry does).

        :param name: the project's name.
        :param environments: its environments, in workflow order: a key, or ``{"key", "name", "review",
            "duration", "fails", "error", "id", "change_request", "approval_mode"}`` (``review``: deployments wait for a
            reviewer; ``duration``: emulated seconds a deployment takes; ``fails``: it ends in failure;
            ``change_request``: a deploy through the API makes a pending change request instead of a run).
        :param project_id: its id (a new uuid by default).
        :param deploy_answer: what the deploy call answers: ``run`` (the run, or the change request where the deploy makes
            one), ``id`` (``{"id"}`` of either) or ``empty`` (``{}``).
        :param comment_visible: whether a deploy comment shows in the job's ``data``.
        :returns: ``{"id", "name", "environments": {key: environment_id}}``.
        :raises ScenarioError: (a ValueError) when the definition is invalid.
        """
        data = {
            "name": name,
            "id": project_id,
            "environments": list(environments),
            "deploy_answer": deploy_answer,
            "comment_visible": comment_visible,
        }
        return self._gorules.add_project(validate(GoRulesProjectSpec, data, "GoRules project"))

    def seed_gorules_ids(self, seed: int | str | None) -> None:
        """
        Make the BRMS's new ids (projects, environments, releases, runs, jobs) reproducible: drawn from a
        generator seeded with ``seed`` instead of random uuids (None turns that off).

        The same calls in the same order then give the same ids, so anything keyed by a request's path
        (a seeded fault schedule, recorded requests) is the same in every run.
        """
        self._gorules.seed_ids(seed)

    def add_release(self, project_id: str, name: str, version: str, *, release_id: str | None = None, description: str = "") -> str:
        """Create a published release in a BRMS project; returns its id."""
        data = {"name": name, "version": version, "id": release_id, "description": description}
        return self._gorules.add_release(project_id, validate(ReleaseSpec, data, "release"))

    def configure_gorules_project(self, project_id: str, *, deploy_answer: str | None = None, comment_visible: bool | None = None) -> None:
        """Change what the project's deploy call answers, or whether it shows the deploy comment."""
        data = {"deploy_answer": deploy_answer, "comment_visible": comment_visible}
        self._gorules.configure(project_id, validate(GoRulesSettings, data, "GoRules project settings"))

    def gorules_projects(self) -> list[dict[str, Any]]:
        """Every BRMS project's set-up: ``{"id", "name", "environments": [{"key", "id", "name", "review",
        "change_request"}], "releases": [{"id", "name", "version"}], "change_requests": [...], "deploy_answer",
        "comment_visible"}``."""
        return self._gorules.describe_all()

    def gorules_runs(self, project_id: str) -> list[dict[str, Any]]:
        """The project's runs as the API shows them, newest first."""
        return self._gorules.all_runs(project_id)

    def gorules_run(self, project_id: str, run_id: str) -> dict[str, Any]:
        """One run as the API shows it."""
        return self._gorules.run_view(project_id, run_id)

    def start_gorules_run(
        self, project_id: str, release_id: str, environments: Sequence[str], comment: str | None = None
    ) -> dict[str, Any]:
        """Start a workflow run over ``environments`` (keys or ids, in order), as someone in the BRMS UI would."""
        return self._gorules.start_run(project_id, release_id, environments, comment)

    def review_in_gorules(
        self, project_id: str, run_id: str, environment_key: str, approve: bool = True, comment: str | None = None
    ) -> dict[str, Any]:
        """
        A reviewer answers the pending review of the run's job for ``environment_key`` in the BRMS UI.

        :raises ApiError: when that job is not waiting for a review.
        """
        return self._gorules.review(project_id, run_id, environment_key, approve=approve, comment=comment)

    def review_change_request(self, project_id: str, request_id: str, approve: bool = True) -> dict[str, Any]:
        """
        A reviewer answers a pending change request (made by a deploy to an environment with ``change_request``) in the
        BRMS UI: approved, it is ``completed`` and the deployment runs (a new run, its id under ``runId``); rejected, it is
        ``rejected``.

        :raises ApiError: when it is not pending.
        """
        return self._gorules.review_change_request(project_id, request_id, approve=approve)

    def gorules_deployed(self, project_id: str) -> dict[str, str]:
        """What each environment (by key) runs now: ``{key: release_id}``."""
        return self._gorules.deployed(project_id)
