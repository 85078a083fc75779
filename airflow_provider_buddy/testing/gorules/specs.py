"""
GoRules' part of a scenario: BRMS projects, their environments and releases, and how their deploy call
answers (the format: see :mod:`airflow_provider_buddy.testing.scenario`). The Python API
(``add_gorules_project``, ``add_release``, ``configure_gorules_project``) validates through the same specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from airflow_provider_buddy.testing._specs import Spec

DeployAnswer = Literal["run", "id", "empty"]
"""What the deploy call answers: the run object, ``{"id"}``, or ``{}`` (a client must look the run up)."""

DEFAULT_ERROR = "Deployment failed: the environment rejected the release"

DEFAULT_ENVIRONMENTS: tuple[Mapping[str, Any], ...] = (
    {"key": "dev", "name": "Development"},
    {"key": "staging", "name": "Staging", "review": True},
    {"key": "production", "name": "Production", "review": True},
)
"""A project's environments when none are given."""


class EnvironmentSpec(Spec):
    """
    An environment of a project (in a project's ``environments``, a plain key stands for ``{"key": key}``).

    :param key: its short key, e.g. "staging" (default ``env<n>``, n its place from 1).
    :param name: its display name (default: the key, capitalised).
    :param id: its id (default: a new uuid).
    :param review: a deployment to it waits for a reviewer.
    :param duration: emulated seconds a deployment to it takes.
    :param fails: a deployment to it ends in failure...
    :param error: ...with this event text.
    :param change_request: a deploy to it through the API creates a pending change request instead of a run (approved
        with ``review_change_request``, it then runs).
    :param approval_mode: its ``approvalMode`` as listed (default: ``require_any`` with ``change_request``,
        ``require_one_per_team`` with ``review``, else ``none``).
    """

    key: str = Field(min_length=1)
    name: str = Field(min_length=1)
    id: str | None = Field(default=None, min_length=1)
    review: bool = False
    duration: float = Field(default=1.0, ge=0)
    fails: bool = False
    error: str = Field(default=DEFAULT_ERROR, min_length=1)
    change_request: bool = False
    approval_mode: str | None = Field(default=None, min_length=1)


class ReleaseSpec(Spec):
    """
    A published release of a project.

    :param name: its name.
    :param version: its semantic version (``semanticVersion``; the numeric ``version`` counts the project's releases).
    :param id: its id (default: a new uuid).
    :param description: its notes.
    """

    name: str
    version: str
    id: str | None = Field(default=None, min_length=1)
    description: str = ""


class GoRulesSettings(Spec):
    """
    How a project's deploy call behaves (None: unchanged).

    :param deploy_answer: ``run`` (the run object, or the change request object where the deploy makes one), ``id``
        (``{"id"}`` of either) or ``empty`` (``{}``).
    :param comment_visible: whether a deploy comment shows in the job's ``data``.
    """

    deploy_answer: DeployAnswer | None = None
    comment_visible: bool | None = None


class GoRulesProjectSpec(Spec):
    """
    A BRMS project.

    :param name: its name.
    :param id: its id (default: a new uuid).
    :param environments: its environments, in workflow order (default: dev; staging and production, reviewed).
    :param releases: its published releases, oldest first.
    :param deploy_answer: what its deploy call answers (see :class:`GoRulesSettings`).
    :param comment_visible: whether a deploy comment shows in the job's ``data``.
    """

    name: str = Field(default="rules", min_length=1)
    id: str | None = Field(default=None, min_length=1)
    environments: list[EnvironmentSpec] = Field(default_factory=lambda: list(DEFAULT_ENVIRONMENTS), validate_default=True)
    releases: list[ReleaseSpec] = Field(default_factory=list)
    deploy_answer: DeployAnswer = "run"
    comment_visible: bool = True

    @field_validator("environments", mode="before")
    @classmethod
    def _fill_in(cls, value: Any) -> Any:
        """A plain key stands for ``{"key": key}``; a missing key is ``env<n>``, a missing name the key capitalised."""
        if not isinstance(value, (list, tuple)):
            return value
        filled: list[Any] = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                item = {"key": item}
            if isinstance(item, Mapping):
                item = dict(item)
                item["key"] = item.get("key") or f"env{index + 1}"
                if isinstance(item["key"], str):
                    item["name"] = item.get("name") or item["key"].capitalize()
            filled.append(item)
        return filled

    @model_validator(mode="after")
    def _check(self) -> GoRulesProjectSpec:
        for what, values in (
            ("environment keys", [env.key for env in self.environments]),
            ("environment ids", [env.id for env in self.environments if env.id]),
            ("release ids", [release.id for release in self.releases if release.id]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{what} must be unique within a project, got {values}")
        return self


class GoRulesSpec(Spec):
    """
    The scenario's ``gorules`` section.

    :param projects: the BRMS projects.
    """

    projects: list[GoRulesProjectSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> GoRulesSpec:
        ids = [project.id for project in self.projects if project.id]
        if len(set(ids)) != len(ids):
            raise ValueError(f"GoRules project ids must be unique, got {ids}")
        return self
