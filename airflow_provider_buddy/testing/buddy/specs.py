"""
Buddy's part of a scenario: projects, pipelines, actions and variables (the format: see
:mod:`airflow_provider_buddy.testing.scenario`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from airflow_provider_buddy.testing._specs import Spec, validate

WAIT_TYPES: dict[str, str] = {
    "WAIT_FOR_APPLY": "WAITING_FOR_APPLY",
    "WAIT_FOR_VARIABLES": "WAITING_FOR_VARIABLES",
    # "Set variables" (https://buddy.works/docs/api/actions/set-variables): which action shows
    # WAITING_FOR_SETTABLE_VARIABLES is not documented; this type plays it
    "SET_VARIABLES": "WAITING_FOR_SETTABLE_VARIABLES",
    # "Approve Visual Tests Session" (type APPROVE_VT, https://buddy.works/docs/api/actions/add/approve-vt)
    "APPROVE_VT": "WAITING_FOR_VT_SESSION",
}
"""Action types that block for a person, mapped to the status shown while they wait."""
VARIABLE_WAITS = frozenset({"WAITING_FOR_VARIABLES", "WAITING_FOR_SETTABLE_VARIABLES"})
"""Wait statuses that ask for variables."""

Outcome = Literal["SUCCESSFUL", "FAILED", "TERMINATED", "SKIPPED", "NOT_EXECUTED"]


class VariableSpec(BaseModel):
    """
    A variable: an action's output, a "pass arguments" prompt's default, or a value passed to a run.

    :param key: the variable's name.
    :param value: its value (for a prompt, the default).
    :param encrypted: secret values are never echoed back by the API.
    :param description: free text.
    """

    model_config = ConfigDict(extra="ignore")

    key: str = Field(min_length=1)
    value: str = ""
    encrypted: bool = False
    description: str = ""


class ActionSpec(Spec):
    """
    One action of a pipeline.

    :param id: the action's numeric id.
    :param name: its display name.
    :param type: a Buddy action type; ``WAIT_FOR_APPLY``, ``WAIT_FOR_VARIABLES``, ``SET_VARIABLES`` and ``APPROVE_VT``
        wait for a person.
    :param duration: emulated seconds a non-waiting action runs.
    :param log: log lines; None makes up two lines.
    :param outputted_variables: variables the action exports when it succeeds.
    :param variables: for ``WAIT_FOR_VARIABLES`` and ``SET_VARIABLES``, the variables asked for, with defaults.
    """

    id: int
    name: str = Field(min_length=1)
    type: str = "BUILD"
    duration: float = Field(default=1.0, ge=0)
    log: list[str] | None = None
    outputted_variables: list[VariableSpec] = Field(default_factory=list)
    variables: list[VariableSpec] = Field(default_factory=list)

    @property
    def waits(self) -> bool:
        """True for an action that blocks until a person approves it."""
        return self.type in WAIT_TYPES

    def log_lines(self) -> list[str]:
        """The action's log lines (made up when the scenario gives none)."""
        if self.log is not None:
            return list(self.log)
        if self.waits:
            return [f'Waiting for a person to approve "{self.name}"']
        return [f'Executing action "{self.name}" ({self.type})', f'Action "{self.name}" finished']


class PipelineSpec(Spec):
    """
    A pipeline and the way its runs play out.

    :param id: the pipeline's numeric id.
    :param identifier: its human-readable id.
    :param name: its display name (defaults to the identifier).
    :param actions: its actions, in run order.
    :param outcome: how a run ends: SUCCESSFUL, FAILED, TERMINATED, SKIPPED or NOT_EXECUTED.
    :param fail_action: for FAILED, the id of the action that fails (default: the last non-waiting one).
    :param error_message: for FAILED, the failing action's error message.
    :param wait_shown_on: "execution" (the execution shows WAITING_FOR_*) or "action" (only the action does).
    :param enqueued_for: emulated seconds a new run stays ENQUEUED.
    :param retry_outcome: how a retried run ends.
    :param disabled: a disabled pipeline refuses to run.
    :param disabled_reason: why it is disabled.
    :param refs: git refs; the first ``refs/heads/...`` one is the default branch.
    :param hidden: hidden by its visibility settings: left out of the pipelines list (still found by id, and by the
        identifiers lookup unless the emulator is told otherwise).
    """

    id: int
    identifier: str = Field(min_length=1)
    name: str = ""
    actions: list[ActionSpec] = Field(min_length=1)
    outcome: Outcome = "SUCCESSFUL"
    fail_action: int | None = None
    error_message: str | None = None
    wait_shown_on: Literal["execution", "action"] = "execution"
    enqueued_for: float = Field(default=0.0, ge=0)
    retry_outcome: Outcome = "SUCCESSFUL"
    disabled: bool = False
    disabled_reason: str | None = None
    refs: list[str] = Field(default_factory=lambda: ["refs/heads/main"])
    hidden: bool = False

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        if not self.name:
            self.name = self.identifier
        ids = [action.id for action in self.actions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"pipeline {self.id}: action ids must be unique, got {ids}")
        if self.fail_action is not None:
            action = self.action(self.fail_action)
            if action is None:
                raise ValueError(f"pipeline {self.id}: fail_action {self.fail_action} is not one of its actions")
            if action.waits:
                raise ValueError(f"pipeline {self.id}: fail_action {self.fail_action} is a waiting action")
        if "FAILED" in (self.outcome, self.retry_outcome) and all(a.waits for a in self.actions):
            raise ValueError(f"pipeline {self.id}: a FAILED outcome needs a non-waiting action to fail")
        return self

    def action(self, action_id: int) -> ActionSpec | None:
        """The action with that id, or None."""
        return next((a for a in self.actions if a.id == action_id), None)

    @property
    def default_branch(self) -> str:
        """The branch a run uses when none is given."""
        for ref in self.refs:
            if ref.startswith("refs/heads/"):
                return ref.removeprefix("refs/heads/")
        return "main"

    @property
    def failure_message(self) -> str:
        """The error message of the failing action."""
        return self.error_message or "Action failed: the command returned exit code 1"


class ProjectSpec(Spec):
    """
    A project and its pipelines.

    :param name: the project's name ID (as in URLs).
    :param display_name: its display name (defaults to the name).
    :param pipelines: its pipelines.
    """

    name: str = Field(min_length=1)
    display_name: str = ""
    pipelines: list[PipelineSpec] = Field(default_factory=list)


def pipeline_spec(data: Mapping[str, Any]) -> PipelineSpec:
    """
    Build a PipelineSpec from its JSON form, raising ScenarioError with a readable message.

    :param data: the pipeline's fields, as in a scenario file.
    """
    return validate(PipelineSpec, data, "pipeline")
