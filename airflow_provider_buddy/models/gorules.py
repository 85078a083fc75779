"""Typed views of the GoRules BRMS objects this provider reads: deployment workflow runs, their jobs, releases,
environments and change requests.

The BRMS API is documented as under active development, so everything here is tolerant: unknown fields
are ignored, only ``id`` is required, ``camelCase`` and ``snake_case`` both parse, and statuses the API
adds later are kept as strings and read as "still going" (:class:`StatusGroup.UNKNOWN`).

Reading of run statuses (the project's, see the README): ``completed`` = success; ``failure`` and
``cancelled`` = ended without success; ``in_progress`` = running; ``waiting`` = waiting for a person's
review (an approval gate). Job statuses beyond ``not_started`` are not documented: they are kept as is.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from airflow_provider_buddy.models.status import StatusGroup

__all__ = [
    "ChangeRequestRef",
    "DeployResult",
    "Environment",
    "EnvironmentRef",
    "Job",
    "Paginate",
    "Release",
    "ReleaseRef",
    "Run",
    "UserRef",
    "run_status_group",
]

_RUN_GROUPS: dict[str, StatusGroup] = {
    "completed": StatusGroup.SUCCESS,
    "failure": StatusGroup.FAILURE,
    "cancelled": StatusGroup.CANCELLED,
    "in_progress": StatusGroup.RUNNING,
    "waiting": StatusGroup.WAITING_FOR_PERSON,
}

_JOB_DONE = frozenset(
    {"completed", "success", "succeeded", "deployed", "failure", "failed", "cancelled", "canceled", "skipped", "rejected"}
)
_JOB_WAITING = frozenset(
    {"waiting", "waiting_for_review", "waiting_for_approval", "pending_review", "pending_approval", "review", "in_review"}
)


def run_status_group(status: str | None) -> StatusGroup:
    """
    Read a run status into its group; an unknown or missing one is ``UNKNOWN`` (still going).

    :param status: the run's ``status`` as the API sent it.
    """
    if not status:
        return StatusGroup.UNKNOWN
    return _RUN_GROUPS.get(status.strip().lower(), StatusGroup.UNKNOWN)


class _GoRulesModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, alias_generator=to_camel)

    @field_validator("*", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any, info: Any) -> Any:
        # ids are uuids today; keep any id the API sends (numbers included) as text
        name = getattr(info, "field_name", "") or ""
        if (name == "id" or name.endswith("_id")) and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class UserRef(_GoRulesModel):
    """
    A BRMS user (creator, reviewer, canceller).

    :param id: the user's id.
    :param email: e-mail address.
    :param first_name: first name.
    :param last_name: last name.
    """

    id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None

    @property
    def display(self) -> str:
        """Name and e-mail when known, else whatever identifies the user."""
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        if name and self.email:
            return f"{name} <{self.email}>"
        return name or self.email or self.id or "unknown user"


class EnvironmentRef(_GoRulesModel):
    """
    An environment a job deploys to.

    :param id: the environment's id.
    :param name: its display name ("Staging").
    :param key: its short key ("staging").
    """

    id: str | None = None
    name: str | None = None
    key: str | None = None

    @property
    def label(self) -> str:
        """``Name (key)``, or whichever of them is known."""
        if self.name and self.key and self.name != self.key:
            return f"{self.name} ({self.key})"
        return self.name or self.key or self.id or "unknown environment"


class ReleaseRef(_GoRulesModel):
    """
    A release as a run, a job or an environment names it.

    The documented shapes differ: a run's ``release`` and a job's ``previousRelease`` carry ``version`` as a string
    (https://docs.gorules.io/api-reference/brms/deployment-workflows/get-deployment-workflow-run); a release and an
    environment's ``release`` carry ``version`` as a number beside ``semanticVersion``
    (https://docs.gorules.io/api-reference/brms/release/list-releases,
    https://docs.gorules.io/api-reference/brms/environment/list-environments). Both parse.

    :param id: the release's id.
    :param name: its name.
    :param version: its version: a number (releases, environments) or text (runs, jobs).
    :param semantic_version: its semantic version (``1.4.0``), where the answer gives one.
    """

    id: str | None = None
    name: str | None = None
    version: int | str | None = None
    semantic_version: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return None if isinstance(value, bool) else value

    @property
    def version_label(self) -> str | None:
        """The version people read: the semantic version, else a text version, else ``v<number>``."""
        if self.semantic_version:
            return self.semantic_version
        if isinstance(self.version, str):
            return self.version or None
        return f"v{self.version}" if self.version is not None else None

    @property
    def label(self) -> str:
        """``name version``, or whichever of them is known."""
        parts = [part for part in (self.name, self.version_label) if part]
        return " ".join(parts) if parts else (self.id or "unknown release")


class ChangeRequestRef(_GoRulesModel):
    """
    A change request: a deployment (or other change) waiting for approval instead of happening at once
    (https://docs.gorules.io/brms/review/requests.md). Documented only as embedded in a release
    (``changeRequests: [{id, status, environment: {id, name}}]``, list-releases) and an environment (``{id, ...}``);
    how the API answers a deploy that creates one is not documented.

    :param id: its id.
    :param status: its status (the UI filters Pending, Completed, Cancelled, Rejected).
    :param environment: the environment it deploys to.
    """

    id: str
    status: str | None = None
    environment: EnvironmentRef | None = None
    environment_id: str | None = None
    release_id: str | None = None
    created_at: str | None = None

    @property
    def is_pending(self) -> bool:
        """True while it waits for a decision (status ``pending``/``open``, or none given)."""
        return (self.status or "pending").strip().lower() in ("pending", "open", "in_review", "waiting")

    def targets(self, environment_id: str) -> bool:
        """True when it is about ``environment_id``."""
        return environment_id in (self.environment_id, self.environment.id if self.environment is not None else None)

    def summary(self) -> dict[str, Any]:
        """A plain-JSON view for XCom."""
        return {
            "change_request_id": self.id,
            "status": self.status,
            "environment_id": self.environment_id or (self.environment.id if self.environment is not None else None),
            "release_id": self.release_id,
        }


class Release(ReleaseRef):
    """
    A release of a project (``GET /api/projects/{projectId}/releases``, ``.../releases/{releaseId}``); extra fields are
    kept loosely.

    :param description: its change notes.
    :param status: its status, when the API sends one (``draft`` in the docs' example; ``published``...).
    :param created_at: when it was created (text, as sent).
    :param change_requests: its change requests (``{id, status, environment}``).
    """

    description: str | None = None
    status: str | None = None
    project_id: str | None = None
    created_at: str | None = None
    change_requests: list[ChangeRequestRef] = Field(default_factory=list)

    @field_validator("change_requests", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Environment(_GoRulesModel):
    """
    An environment of a project, as ``GET /api/projects/{projectId}/environments`` lists it
    (https://docs.gorules.io/api-reference/brms/environment/list-environments).

    :param id: its id (a uuid).
    :param name: its display name.
    :param key: its short key.
    :param type: ``brms`` (virtual) or ``deployment`` (external).
    :param approval_mode: how a deployment to it is approved (``none``, ``none_create_request``, ``require_any``,
        ``require_one_per_team``; the values are a third party's, the UI names them None, None (Create Request),
        Require: any, Require: 1 per group).
    :param required_reviewers: whether a deployment to it needs reviewers.
    :param release: the release it runs now.
    :param workflow_order: its place in the deployment workflow.
    :param change_requests: its change requests.
    """

    id: str
    name: str | None = None
    key: str | None = None
    type: str | None = None
    project_id: str | None = None
    approval_mode: str | None = None
    required_reviewers: bool | None = None
    add_to_workflow: bool | None = None
    release: Release | None = None
    release_id: str | None = None
    workflow_order: int | None = None
    change_requests: list[ChangeRequestRef] = Field(default_factory=list)

    @field_validator("change_requests", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def label(self) -> str:
        """``Name (key)``, or whichever of them is known."""
        return EnvironmentRef(id=self.id, name=self.name, key=self.key).label

    def describe(self) -> str:
        """``Staging (staging), id …, approval mode require_any, runs release Pricing rules 1.4.0``."""
        parts = [f"{self.label}, id {self.id}"]
        if self.approval_mode:
            parts.append(f"approval mode {self.approval_mode}")
        parts.append(f"runs release {self.release.label}" if self.release is not None else "runs no release yet")
        return ", ".join(parts)


class Job(_GoRulesModel):
    """
    One job of a run: the deployment to one environment, with its review.

    :param id: the job's id.
    :param status: its status (``not_started`` and anything the API adds, kept as text).
    :param order: its position in the workflow.
    :param environment_id: the environment's id.
    :param environment: the environment.
    :param reviewed_at: when it was reviewed.
    :param reviewed_by: who reviewed it.
    :param reviewed_comment: the reviewer's comment.
    :param reviewed_conclusion: the review's outcome (``approved``, ...).
    :param previous_release: what the environment ran before.
    :param event: the job's last event.
    :param data: anything else the job carries (shape not documented).
    """

    id: str | None = None
    status: str | None = None
    order: int | None = None
    environment_id: str | None = None
    project_id: str | None = None
    deployment_workflow_run_id: str | None = None
    created_at: str | None = None
    environment: EnvironmentRef | None = None
    reviewed_at: str | None = None
    reviewed_by: UserRef | None = None
    reviewed_comment: str | None = None
    reviewed_conclusion: str | None = None
    previous_release: ReleaseRef | None = None
    previous_release_id: str | None = None
    event: str | None = None
    data: Any = None

    @field_validator("order", mode="before")
    @classmethod
    def _order(cls, value: Any) -> Any:
        if isinstance(value, str):
            return int(value) if value.strip().lstrip("-").isdigit() else None
        return value

    @property
    def environment_label(self) -> str:
        """The environment's ``Name (key)``, or its id."""
        if self.environment is not None:
            return self.environment.label
        return self.environment_id or "unknown environment"

    @property
    def targets(self) -> frozenset[str]:
        """Every way this job's environment can be named: id, key and name."""
        found = {self.environment_id}
        if self.environment is not None:
            found.update({self.environment.id, self.environment.key, self.environment.name})
        return frozenset(value for value in found if value)

    @property
    def is_done(self) -> bool:
        """True when the job's status says it ended (by any of the usual names)."""
        return (self.status or "").lower() in _JOB_DONE

    @property
    def waits_for_review(self) -> bool:
        """True when the job's own status says it waits for a review."""
        return (self.status or "").lower() in _JOB_WAITING

    def describe(self) -> str:
        """``Staging (staging): completed, reviewed by Jane <j@x> (approved: "ok")``."""
        text = f"{self.environment_label}: {self.status or 'unknown status'}"
        if self.reviewed_by is not None or self.reviewed_conclusion:
            who = self.reviewed_by.display if self.reviewed_by is not None else "someone"
            conclusion = self.reviewed_conclusion or "reviewed"
            comment = f': "{self.reviewed_comment}"' if self.reviewed_comment else ""
            text += f", reviewed by {who} ({conclusion}{comment})"
        return text

    def summary(self) -> dict[str, Any]:
        """A plain-JSON view for events and XCom."""
        return {
            "job_id": self.id,
            "order": self.order,
            "environment_id": self.environment_id,
            "environment": self.environment_label,
            "status": self.status,
            "reviewed_by": self.reviewed_by.display if self.reviewed_by is not None else None,
            "reviewed_conclusion": self.reviewed_conclusion,
            "reviewed_comment": self.reviewed_comment,
        }


class Run(_GoRulesModel):
    """
    A deployment workflow run: a release going to one or more environments, one job each.

    :param id: the run's id.
    :param name: its name.
    :param status: its status (kept as text; see :func:`run_status_group`).
    :param release_id: the release it deploys.
    :param project_id: its project.
    :param created_by_id: who started it.
    :param created_at: when (text, as sent).
    :param run_version: ``v2`` or ``release``.
    :param release: the release.
    :param created_by: who started it.
    :param completed_at: when it ended.
    :param cancelled_by: who cancelled it.
    :param cancelled_comment: why it was cancelled.
    :param jobs: its jobs, one per environment.
    """

    id: str
    name: str | None = None
    status: str | None = None
    release_id: str | None = None
    project_id: str | None = None
    created_by_id: str | None = None
    created_at: str | None = None
    run_version: str | None = None
    release: ReleaseRef | None = None
    created_by: UserRef | None = None
    completed_at: str | None = None
    cancelled_by_id: str | None = None
    cancelled_by: UserRef | None = None
    cancelled_comment: str | None = None
    jobs: list[Job] = Field(default_factory=list)

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def status_group(self) -> StatusGroup:
        """What the status means for someone waiting on the run."""
        return run_status_group(self.status)

    @property
    def is_finished(self) -> bool:
        """True when the run will not change any more by itself."""
        return self.status_group.finished

    @property
    def ordered_jobs(self) -> list[Job]:
        """The jobs in workflow order (jobs without an order keep their place, last)."""
        indexed = list(enumerate(self.jobs))
        indexed.sort(key=lambda pair: (pair[1].order is None, pair[1].order if pair[1].order is not None else 0, pair[0]))
        return [job for _, job in indexed]

    @property
    def release_label(self) -> str:
        """The release's ``name version``, or its id."""
        if self.release is not None:
            return self.release.label
        return self.release_id or "unknown release"

    def pending_reviews(self) -> list[Job]:
        """
        The jobs whose review is pending: those whose status says so, else (when the run is ``waiting``)
        the first job in order that is neither done nor reviewed.
        """
        explicit = [job for job in self.ordered_jobs if job.waits_for_review]
        if explicit or self.status_group is not StatusGroup.WAITING_FOR_PERSON:
            return explicit
        for job in self.ordered_jobs:
            if not job.is_done and job.reviewed_conclusion is None:
                return [job]
        return []

    def targets_environment(self, environment: str) -> bool:
        """True when one of the run's jobs deploys to ``environment`` (an id, key or name)."""
        return any(environment in job.targets for job in self.jobs)

    def describe_jobs(self) -> str:
        """One line per job: ``1. Staging (staging): completed, reviewed by ...``."""
        return "; ".join(f"{index}. {job.describe()}" for index, job in enumerate(self.ordered_jobs, start=1)) or "no jobs"

    def texts(self) -> list[str]:
        """Every free text the run carries (name, job events and data), where a comment may show up."""
        found = [self.name or "", self.cancelled_comment or ""]
        for job in self.jobs:
            found.extend([job.event or "", job.reviewed_comment or "", "" if job.data is None else str(job.data)])
        return [text for text in found if text]


_CHANGE_REQUEST_STATUSES = frozenset({"pending", "open", "approved", "rejected", "in_review"})
"""Statuses no run has: an answer carrying one is a change request (the UI's Pending, Rejected...)."""


def _looks_like_change_request(candidate: Any) -> bool:
    """A deploy answer object that is a change request rather than a run (the shape is not documented: no jobs, and a
    change-request status or a top-level environment, which a run names per job only)."""
    if not isinstance(candidate, dict) or not candidate.get("id") or "jobs" in candidate or "runVersion" in candidate:
        return False
    status = str(candidate.get("status") or "").strip().lower()
    return status in _CHANGE_REQUEST_STATUSES or "environmentId" in candidate or isinstance(candidate.get("environment"), dict)


class DeployResult(_GoRulesModel):
    """
    What ``POST .../releases/deploy`` answered. The shape is not documented ("Deployment initiated successfully", no
    example): a run object, a ``{"id"}`` (or ``runId``) reference, a wrapper ``{"run": {...}}``, a change request (the
    deploy creates one "if approvals are required": an object with no jobs and a change-request status or a top-level
    environment, or a ``{"changeRequest": {...}}`` wrapper), or anything else.

    :param run: the run, when the answer was (or wrapped) a run object.
    :param run_id: the id the answer named, when it named one but was no recognisable object (a run's or a change
        request's: the caller finds out which).
    :param change_request: the change request, when the answer was one.
    :param raw_keys: the top-level keys of the answer, for messages.
    """

    run: Run | None = None
    run_id: str | None = Field(default=None, validation_alias=AliasChoices("run_id", "runId"))
    change_request: ChangeRequestRef | None = None
    raw_keys: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Any) -> DeployResult:
        """Read any answer; never fails on an unexpected shape (the run is then looked up)."""
        if not isinstance(data, dict):
            return cls()
        keys = tuple(sorted(str(key) for key in data))
        wrapped = data.get("changeRequest", data.get("change_request"))
        for candidate_request in (wrapped, data):
            if isinstance(candidate_request, dict) and (candidate_request is wrapped or _looks_like_change_request(candidate_request)):
                try:
                    return cls(change_request=ChangeRequestRef.model_validate(candidate_request), raw_keys=keys)
                except ValueError:
                    pass
        candidate = data.get("run") if isinstance(data.get("run"), dict) else data
        looks_like_run = (
            isinstance(candidate, dict)
            and candidate.get("id")
            and ("status" in candidate or "jobs" in candidate or "releaseId" in candidate or "release_id" in candidate)
        )
        if looks_like_run:
            try:
                run = Run.model_validate(candidate)
            except ValueError:
                run = None
            if run is not None:
                return cls(run=run, run_id=run.id, raw_keys=keys)
        for key in ("runId", "run_id", "deploymentWorkflowRunId", "id"):
            value = data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return cls(run_id=str(value), raw_keys=keys)
        return cls(raw_keys=keys)


class Paginate(_GoRulesModel):
    """
    The ``paginate`` block of a list answer.

    :param current: this page's number.
    :param total: how many items there are in all.
    :param page_size: items per page.
    """

    current: int | None = None
    from_: int | None = Field(default=None, alias="from")
    to: int | None = None
    total: int | None = None
    page_size: int | None = None

    def has_more(self, page: int, received: int, per_page: int) -> bool:
        """Whether another page may follow page ``page`` that held ``received`` items."""
        size = self.page_size or per_page
        if self.total is not None:
            if self.to is not None:
                return self.to < self.total
            return (self.current or page) * size < self.total
        return received >= per_page
