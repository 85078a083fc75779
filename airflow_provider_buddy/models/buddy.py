"""Typed views of the Buddy.Works API objects this provider reads and writes.

Unknown fields are ignored, both ``triggered_on`` and ``triggeredOn`` parse, and statuses the API
adds later are kept as strings (see :mod:`airflow_provider_buddy.models.buddy_status`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from airflow_provider_buddy.models.buddy_status import status_group, wait_kind
from airflow_provider_buddy.models.status import StatusGroup, WaitKind

__all__ = [
    "Action",
    "ActionExecution",
    "ActionLogs",
    "Execution",
    "ExecutionEnvironment",
    "ExecutionPackage",
    "ExecutionPackageVersion",
    "IdentifierLookup",
    "Member",
    "NamedRef",
    "Pipeline",
    "PipelineRef",
    "Priority",
    "Revision",
    "RunPipelineRequest",
    "SECRET_MASK",
    "Variable",
    "Workspace",
    "variables_from",
]

SECRET_MASK = "***"


class _ApiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Member(_ApiModel):
    """A Buddy user (creator, approver, committer).

    :param id: the member's numeric id.
    :param name: display name.
    :param email: e-mail address, when Buddy shares it.
    """

    id: int | None = None
    name: str | None = None
    email: str | None = None
    html_url: str | None = None


class Variable(_ApiModel):
    """A pipeline variable. The value of an ``encrypted`` variable is a secret: ``repr`` masks it.

    :param key: the variable's name.
    :param value: its value (None when Buddy withholds it).
    :param encrypted: whether Buddy stores it encrypted.
    """

    key: str
    value: str | None = None
    encrypted: bool = False
    description: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return value

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "value" and self.encrypted and value is not None:
                yield name, SECRET_MASK
            else:
                yield name, value

    def safe_value(self) -> str | None:
        """The value as it may be shown to people and logs (masked when encrypted)."""
        return SECRET_MASK if self.encrypted and self.value is not None else self.value

    def to_api(self) -> dict[str, Any]:
        """The ``{"key", "value", "encrypted"}`` object the API takes."""
        body: dict[str, Any] = {"key": self.key, "value": self.value if self.value is not None else ""}
        if self.encrypted:
            body["encrypted"] = True
        return body


class Action(_ApiModel):
    """A pipeline action (a step).

    :param id: the action's numeric id.
    :param name: the action's name.
    :param type: the action type (``BUILD``, ``WAIT_FOR_APPLY``, ``WAIT_FOR_VARIABLES``, ...).
    """

    id: int | None = None
    name: str | None = None
    type: str | None = None
    html_url: str | None = None


class ActionExecution(_ApiModel):
    """One action's part of an execution.

    :param action_execution_id: Buddy's id of this action execution.
    :param status: its status (kept as a string: new statuses may appear).
    :param action: the action it runs.
    :param error_message: why it failed, when it did.
    """

    action_execution_id: str | None = None
    url: str | None = None
    html_url: str | None = None
    status: str | None = None
    progress: int | None = None
    start_date: datetime | None = None
    finish_date: datetime | None = None
    action: Action | None = None
    error_message: str | None = None
    passed_variables: list[Variable] = Field(default_factory=list)
    outputted_variables: list[Variable] = Field(default_factory=list)
    approver_id: int | None = None
    approval_date: datetime | None = None

    @field_validator("passed_variables", "outputted_variables", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def waits_for(self) -> WaitKind | None:
        """What this action waits for from a person, if it waits."""
        return wait_kind(self.status)

    @property
    def name(self) -> str:
        """The action's name, or a placeholder when Buddy left it out."""
        if self.action is not None and self.action.name:
            return self.action.name
        return f"action execution {self.action_execution_id}"


class NamedRef(_ApiModel):
    """A branch, tag or pull request reference."""

    name: str | None = None


class Revision(_ApiModel):
    """A commit reference."""

    revision: str | None = None
    message: str | None = None


class PipelineRef(_ApiModel):
    """The short pipeline object embedded in an execution."""

    id: int | None = None
    identifier: str | None = None
    name: str | None = None
    html_url: str | None = None


class ExecutionEnvironment(_ApiModel):
    """The environment a run deploys to, as the run answer shows it (seed 002: ``{url, html_url, name, identifier, id,
    scope}``; the identifier may differ from the name the request gave).

    :param id: the environment's id (a short string).
    :param name: its name.
    :param identifier: its human-readable id.
    :param scope: ``PROJECT`` or ``WORKSPACE``.
    """

    id: str | None = None
    name: str | None = None
    identifier: str | None = None
    scope: str | None = None
    url: str | None = None
    html_url: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ExecutionPackage(_ApiModel):
    """The package a run deploys (a top-level ``package`` beside ``package_version``, seed 002).

    :param id: the package's id.
    :param name: its name.
    :param identifier: its human-readable id.
    :param type: e.g. ``CONTAINER``.
    """

    id: str | None = None
    name: str | None = None
    identifier: str | None = None
    type: str | None = None
    scope: str | None = None
    url: str | None = None
    html_url: str | None = None


class ExecutionPackageVersion(_ApiModel):
    """The package version a run deploys (seed 002: ``{url, html_url, version_url, id, version, size, created_date}``;
    it does not name its package).

    :param id: the version's id.
    :param version: the version text.
    """

    id: str | None = None
    version: str | None = None
    version_url: str | None = None
    url: str | None = None
    html_url: str | None = None


class Execution(_ApiModel):
    """A pipeline execution (a run).

    :param id: the execution's numeric id.
    :param status: its status (kept as a string: new statuses may appear).
    :param html_url: the page a person opens to see it.
    :param action_executions: the state of each action.
    """

    id: int
    url: str | None = None
    html_url: str | None = None
    status: str | None = None
    start_date: datetime | None = None
    finish_date: datetime | None = None
    triggered_on: str | None = Field(default=None, validation_alias=AliasChoices("triggered_on", "triggeredOn"))
    priority: str | None = None
    refresh: bool | None = None
    clear_cache: bool | None = None
    comment: str | None = None
    branch: NamedRef | None = None
    tag: NamedRef | None = None
    pull_request: NamedRef | None = None
    to_revision: Revision | None = None
    from_revision: Revision | None = None
    creator: Member | None = None
    pipeline: PipelineRef | None = None
    environment: ExecutionEnvironment | None = None
    package: ExecutionPackage | None = None
    package_version: ExecutionPackageVersion | None = None
    delay_until: datetime | None = None
    action_executions: list[ActionExecution] = Field(default_factory=list)

    @field_validator("environment", "package", mode="before")
    @classmethod
    def _named_by_text(cls, value: Any) -> Any:
        # an older answer may name it as plain text: keep what it says rather than fail to read the run
        if isinstance(value, str):
            return {"name": value} if value else None
        return value

    @field_validator("package_version", mode="before")
    @classmethod
    def _version_by_text(cls, value: Any) -> Any:
        if isinstance(value, str):  # "name:version", as the run request gives it
            return {"version": value.rpartition(":")[2] or value} if value else None
        return value

    @field_validator("action_executions", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def status_group(self) -> StatusGroup:
        """The group the execution's status falls in, counting a waiting action as waiting."""
        own = status_group(self.status)
        if own in (StatusGroup.RUNNING, StatusGroup.UNKNOWN) and self.waiting_action is not None:
            return StatusGroup.WAITING_FOR_PERSON
        return own

    @property
    def is_finished(self) -> bool:
        """True when the execution ended (success, failure, cancelled or skipped)."""
        return status_group(self.status).finished

    @property
    def waiting_action(self) -> ActionExecution | None:
        """The action execution that waits for a person, if any.

        The docs leave open whether the wait shows on the execution's status, on the action's, or
        both: this looks at both.
        """
        if status_group(self.status).finished:
            return None
        for action in self.action_executions:
            if action.waits_for is not None:
                return action
        return None

    @property
    def waits_for(self) -> WaitKind | None:
        """What the execution waits for from a person (approval, variables, ...), or None."""
        if status_group(self.status).finished:
            return None
        action = self.waiting_action
        if action is not None:
            return action.waits_for
        return wait_kind(self.status)

    @property
    def waiting_status(self) -> str | None:
        """The status of the wait for a person (the waiting action's, else the execution's own), or None: what decides
        how the wait is answered (:func:`~airflow_provider_buddy.models.buddy_status.approve_operations`)."""
        if self.waits_for is None:
            return None
        action = self.waiting_action
        return action.status if action is not None else self.status

    @property
    def not_started(self) -> bool:
        """True while the run has not started: queued, or scheduled by ``delay_until`` and waiting for its time (what a
        scheduled run shows is not documented: ENQUEUED and INITIAL are both read so)."""
        return (self.status or "").upper() in ("ENQUEUED", "INITIAL")

    @property
    def failed_action(self) -> ActionExecution | None:
        """The first action execution that failed, if any."""
        for action in self.action_executions:
            if status_group(action.status) is StatusGroup.FAILURE:
                return action
        return None

    def outputted_variables(self) -> dict[str, str | None]:
        """Variables the actions output, with encrypted values masked."""
        found: dict[str, str | None] = {}
        for action in self.action_executions:
            for variable in action.outputted_variables:
                found[variable.key] = variable.safe_value()
        return found


class Pipeline(_ApiModel):
    """A Buddy pipeline.

    :param id: the pipeline's numeric id.
    :param identifier: its human-readable id.
    :param name: its name.
    """

    id: int
    identifier: str | None = None
    name: str | None = None
    url: str | None = None
    html_url: str | None = None
    disabled: bool | None = None
    disabled_reason: str | None = None
    paused: bool | None = None
    last_execution_status: str | None = None
    concurrent_pipeline_runs: bool | None = None
    no_skip_to_most_recent: bool | None = None
    actions: list[Action] = Field(default_factory=list)

    @field_validator("actions", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class IdentifierLookup(_ApiModel):
    """
    What ``GET /workspaces/{ws}/identifiers`` answered: the ids of the objects named by their human-readable ids
    (https://buddy.works/docs/api/platform/workspaces/get-id-by-identifier). Only the keys for the objects asked about
    are expected.

    :param pipeline_id: the pipeline's numeric id.
    :param project_identifier: the project's name id.
    :param environment_id: the environment's id.
    """

    url: str | None = None
    html_url: str | None = None
    domain: str | None = None
    project_identifier: str | None = None
    pipeline_id: int | None = None
    environment_id: str | None = None


class Workspace(_ApiModel):
    """A Buddy workspace."""

    id: int | None = None
    name: str | None = None
    domain: str | None = None
    html_url: str | None = None


class ActionLogs(_ApiModel):
    """One page of an action execution's log."""

    offset: int = 0
    element_count: int = 0
    total_element_count: int = 0
    logs: list[str] = Field(default_factory=list)


Priority = Literal["LOW", "NORMAL", "HIGH"]


def variables_from(value: Any) -> list[Variable]:
    """
    Read variables given as a ``{key: value}`` dict or a list of ``{key, value, encrypted}`` objects.

    :param value: the variables as a DAG author writes them.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        out = [Variable(key=str(k), value=v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        out = [item if isinstance(item, Variable) else Variable.model_validate(item) for item in value]
    else:
        out = None
    if out is not None:
        if any(not v.key.strip() for v in out):
            raise ValueError("variable keys must not be empty")
        return out
    raise ValueError(f"variables must be a dict or a list of {{key, value, encrypted}} objects, got {type(value).__name__}")


class RunPipelineRequest(BaseModel):
    """The body of a run request, from plain values.

    :param branch: run on this branch (at most one of branch, tag, pull_request).
    :param tag: run on this tag.
    :param pull_request: run on this pull request (e.g. ``pull/3``).
    :param revision: the commit to run (a SHA or ``HEAD``); sent as ``to_revision``.
    :param from_revision: the commit to start the changeset from.
    :param comment: the run's comment.
    :param refresh: deploy from scratch.
    :param clear_cache: clear the cache before running.
    :param priority: ``LOW``, ``NORMAL`` or ``HIGH``.
    :param variables: a ``{key: value}`` dict or a list of ``{key, value, encrypted}`` objects.
    :param actions_to_run: only run these action ids.
    :param environment: the environment to run in.
    :param package_version: ``name:version`` of a package to deploy.
    :param delay_until: a timezone-aware datetime; the run starts then.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    branch: str | None = None
    tag: str | None = None
    pull_request: str | None = None
    revision: str | None = None
    from_revision: str | None = None
    comment: str | None = None
    refresh: bool | None = None
    clear_cache: bool | None = None
    priority: Priority | None = None
    variables: list[Variable] = Field(default_factory=list)
    actions_to_run: list[PositiveInt] | None = None
    environment: str | None = None
    package_version: str | None = None
    delay_until: datetime | None = None

    @field_validator("variables", mode="before")
    @classmethod
    def _read_variables(cls, value: Any) -> Any:
        return variables_from(value)

    @field_validator("priority", mode="before")
    @classmethod
    def _upper_priority(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("branch", "tag", "pull_request", "revision", "from_revision", "environment", "package_version")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("delay_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError("must be timezone-aware (e.g. pendulum.datetime(..., tz='UTC'))")
        return value

    @model_validator(mode="after")
    def _one_ref(self) -> RunPipelineRequest:
        given = [name for name in ("branch", "tag", "pull_request") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of branch, tag, pull_request (got {' and '.join(given)})")
        keys = [v.key for v in self.variables]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"variables: duplicate keys {duplicates}")
        return self

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name == "variables":
                yield name, [(v.key, v.safe_value()) for v in self.variables]
            else:
                yield name, value

    def to_api(self) -> dict[str, Any]:
        """The JSON body ``POST .../executions`` takes."""
        body: dict[str, Any] = {}
        for name in ("branch", "tag", "pull_request"):
            value = getattr(self, name)
            if value is not None:
                body[name] = {"name": value}
        if self.revision is not None:
            body["to_revision"] = {"revision": self.revision}
        if self.from_revision is not None:
            body["from_revision"] = {"revision": self.from_revision}
        for name in ("comment", "refresh", "clear_cache", "priority", "environment", "package_version"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.variables:
            body["variables"] = [v.to_api() for v in self.variables]
        if self.actions_to_run:
            body["actions_to_run"] = list(self.actions_to_run)
        if self.delay_until is not None:
            utc = self.delay_until.astimezone(timezone.utc)
            body["delay_until"] = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
        return body
