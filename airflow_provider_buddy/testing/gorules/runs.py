"""Emulated GoRules BRMS objects (environments, releases, runs, jobs) and the run state machine.

Like the Buddy side, nothing ticks in the background: every read first calls :func:`settle`, which
moves a run as far as the emulated clock allows. Jobs run in order; a job whose environment requires
review stops the run in ``waiting`` until someone reviews it (:meth:`GoRulesState.review`); an approved
job then deploys for its environment's ``duration``; a failing environment ends the run in ``failure``.

Choices where the API documentation is silent (documented here so tests can rely on them): jobs go
``not_started`` -> ``waiting`` (review pending) -> ``in_progress`` -> ``completed`` / ``failure``; a
rejected review marks the job ``rejected`` and the run ``failure``; a cancelled run's unfinished jobs
become ``cancelled``; the deploy comment is kept in the job's ``data`` (``{"comment": ...}``) unless the
project says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_buddy.testing.clock import iso

RUN_FINISHED = frozenset({"completed", "failure", "cancelled"})
JOB_FINISHED = frozenset({"completed", "failure", "cancelled", "rejected"})

TOKEN_OWNER: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000001",
    "email": "bot@gorules-emulator.invalid",
    "firstName": "Emulator",
    "lastName": "Bot",
}
"""The token's owner: creates runs through the API and cancels them."""
REVIEWER: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000002",
    "email": "jane@gorules-emulator.invalid",
    "firstName": "Jane",
    "lastName": "Reviewer",
}
"""The person using the BRMS UI: reviews jobs, starts runs from the UI."""


@dataclass
class Environment:
    """
    An environment of a project.

    :param id: its id.
    :param key: its short key ("staging").
    :param name: its display name.
    :param review: whether a deployment to it waits for a review (approval mode other than "none").
    :param duration: emulated seconds a deployment to it takes.
    :param fails: whether a deployment to it fails.
    :param error: the event text of a failed deployment.
    :param change_request: whether a deploy to it through the API creates a change request instead of a run.
    :param approval_mode: its ``approvalMode`` (None: made up from ``review`` and ``change_request``).
    """

    id: str
    key: str
    name: str
    review: bool
    duration: float
    fails: bool
    error: str
    change_request: bool = False
    approval_mode: str | None = None

    def view(self) -> dict[str, Any]:
        """``{id, name, key}`` as a job shows it."""
        return {"id": self.id, "name": self.name, "key": self.key}

    @property
    def mode(self) -> str:
        """Its approval mode: as given, else ``require_any`` for change requests, ``require_one_per_team`` for a job
        review, ``none`` otherwise (the emulator's choice: which mode gives which behaviour is not documented)."""
        if self.approval_mode:
            return self.approval_mode
        return "require_any" if self.change_request else ("require_one_per_team" if self.review else "none")


@dataclass
class Release:
    """
    A release of a project.

    :param id: its id.
    :param name: its name.
    :param version: its semantic version (``semanticVersion``).
    :param description: its notes.
    :param created: when it was created (Unix seconds).
    :param number: its numeric ``version`` (1 for a project's first release, and so on).
    """

    id: str
    name: str
    version: str
    description: str = ""
    created: float = 0.0
    number: int = 1

    def ref(self) -> dict[str, Any]:
        """``{id, name, version}`` as a run shows it: ``version`` a string there (seed 003), the semantic version."""
        return {"id": self.id, "name": self.name, "version": self.version}

    def short_view(self) -> dict[str, Any]:
        """The release as an environment names it: ``{id, name, status, createdAt, version: number, semanticVersion}``."""
        return {
            "id": self.id,
            "name": self.name,
            "status": "published",
            "createdAt": iso(self.created),
            "version": self.number,
            "semanticVersion": self.version,
        }

    def view(self, project_id: str, change_requests: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The release as the releases list and get-a-release show it: ``version`` a number beside ``semanticVersion``
        (https://docs.gorules.io/api-reference/brms/release/list-releases)."""
        return {
            **self.short_view(),
            "description": self.description,
            "projectId": project_id,
            "deletedAt": None,
            "changeRequests": change_requests or [],
        }


@dataclass
class ChangeRequest:
    """
    A deployment waiting for approval as a change request (created by a deploy to an environment with
    ``change_request``). How one looks in the API beyond ``{id, status, environment: {id, name}}`` (embedded in a
    release) is not documented; the emulator answers the deploy with :meth:`view`.

    :param status: ``pending``, then ``completed`` (approved: the deployment runs) or ``rejected``.
    """

    id: str
    release: Release
    environment: Environment
    created: float
    created_by: dict[str, Any]
    comment: str | None = None
    status: str = "pending"
    run_id: str | None = None

    def ref(self) -> dict[str, Any]:
        """``{id, status, environment: {id, name}}`` as a release lists it."""
        return {"id": self.id, "status": self.status, "environment": {"id": self.environment.id, "name": self.environment.name}}

    def view(self) -> dict[str, Any]:
        """The change request the emulator answers a deploy with (the shape is its own: the API's is not documented)."""
        return {
            **self.ref(),
            "type": "release_deployment",
            "releaseId": self.release.id,
            "environmentId": self.environment.id,
            "createdAt": iso(self.created),
            "createdBy": self.created_by,
            "comment": self.comment,
        }


@dataclass
class Job:
    """
    One job of a run: the deployment to one environment.

    :param id: its id.
    :param environment: where it deploys.
    :param order: its place in the run.
    :param created: when it was created (Unix seconds).
    :param status: ``not_started``, ``waiting``, ``in_progress``, ``completed``, ``failure``, ``rejected`` or ``cancelled``.
    """

    id: str
    environment: Environment
    order: int
    created: float
    status: str = "not_started"
    started: float | None = None
    finished: float | None = None
    reviewed_at: float | None = None
    reviewed_by: dict[str, Any] | None = None
    reviewed_comment: str | None = None
    reviewed_conclusion: str | None = None
    previous_release: Release | None = None
    event: str | None = None
    data: Any = None


@dataclass
class Run:
    """
    A deployment workflow run.

    :param id: its id.
    :param project_id: its project.
    :param release: the release it deploys.
    :param jobs: one job per environment, in order.
    :param created: when it was created (Unix seconds).
    :param created_by: who started it (a user object).
    :param name: its name.
    :param status: ``in_progress``, ``waiting``, ``completed``, ``failure`` or ``cancelled``.
    """

    id: str
    project_id: str
    release: Release
    jobs: list[Job]
    created: float
    created_by: dict[str, Any]
    name: str
    status: str = "in_progress"
    completed: float | None = None
    cancelled_by: dict[str, Any] | None = None
    cancelled_comment: str | None = None
    comment: str | None = None


@dataclass
class Project:
    """
    A project: environments, releases, runs.

    :param id: its id.
    :param name: its name.
    :param deploy_answer: what the deploy call answers: ``run`` (the run object, or the change request object where the
        deploy makes one), ``id`` (``{"id"}`` of either) or ``empty`` (``{}``, so a client must look it up).
    :param comment_visible: whether the deploy comment shows in the job's ``data``.
    """

    id: str
    name: str
    environments: dict[str, Environment] = field(default_factory=dict)
    releases: dict[str, Release] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    change_requests: list[ChangeRequest] = field(default_factory=list)
    deployed: dict[str, Release] = field(default_factory=dict)
    deploy_answer: str = "run"
    comment_visible: bool = True
    created: float = 0.0

    def environment(self, wanted: str) -> Environment | None:
        """An environment by id or key."""
        found = self.environments.get(wanted)
        if found is not None:
            return found
        return next((env for env in self.environments.values() if env.key == wanted), None)

    def view(self) -> dict[str, Any]:
        """The project as the projects list shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "key": self.name.lower().replace(" ", "-"),
            "createdAt": iso(self.created),
            "protected": False,
        }


def settle(project: Project, run: Run, now: float) -> None:
    """Move ``run`` as far as the clock allows (see the module's docstring)."""
    if run.status in RUN_FINISHED:
        return
    cursor = run.created
    for job in sorted(run.jobs, key=lambda j: j.order):
        if job.status in JOB_FINISHED:
            cursor = job.finished if job.finished is not None else cursor
            continue
        if job.status == "not_started":
            job.previous_release = project.deployed.get(job.environment.id)
            if job.environment.review:
                job.status = "waiting"
                job.event = "review_requested"
                run.status = "waiting"
                return
            job.status, job.started, job.event = "in_progress", cursor, "deploying"
        if job.status == "waiting":
            run.status = "waiting"
            return
        if job.status == "in_progress":
            start = job.started if job.started is not None else cursor
            end = start + job.environment.duration
            if now < end:
                run.status = "in_progress"
                return
            job.finished = end
            if job.environment.fails:
                job.status, job.event = "failure", job.environment.error
                run.status, run.completed = "failure", end
                return
            job.status, job.event = "completed", "deployed"
            project.deployed[job.environment.id] = run.release
            cursor = end
    run.status, run.completed = "completed", cursor


def review(run: Run, job: Job, now: float, *, approve: bool, comment: str | None, reviewer: dict[str, Any]) -> None:
    """A person reviews a waiting job: approved, it deploys from now on; rejected, the run fails."""
    job.reviewed_at, job.reviewed_by, job.reviewed_comment = now, dict(reviewer), comment
    if approve:
        job.reviewed_conclusion, job.status, job.started, job.event = "approved", "in_progress", now, "review_approved"
        run.status = "in_progress"
        return
    job.reviewed_conclusion, job.status, job.finished, job.event = "rejected", "rejected", now, "review_rejected"
    run.status, run.completed = "failure", now


def cancel(run: Run, now: float, comment: str, by: dict[str, Any]) -> None:
    """Cancel a going run: its unfinished jobs become ``cancelled``."""
    run.status, run.completed, run.cancelled_by, run.cancelled_comment = "cancelled", now, dict(by), comment
    for job in run.jobs:
        if job.status not in JOB_FINISHED:
            job.status, job.finished, job.event = "cancelled", now, "cancelled"
