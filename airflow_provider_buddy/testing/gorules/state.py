"""The emulated GoRules BRMS: projects, environments, releases and runs, behind the emulator's shared lock.

It shares the emulator's lock, clock and token (one server, one token) through :class:`Core`, and knows
nothing of the Buddy side.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_buddy.testing._core import ApiError, Core, page_of
from airflow_provider_buddy.testing.gorules.runs import (
    REVIEWER,
    RUN_FINISHED,
    TOKEN_OWNER,
    ChangeRequest,
    Environment,
    Job,
    Project,
    Release,
    Run,
    cancel,
    review,
    settle,
)
from airflow_provider_buddy.testing.gorules.specs import GoRulesProjectSpec, GoRulesSettings, ReleaseSpec
from airflow_provider_buddy.testing.gorules.views import environment_view, run_view


def _paginate(items: Sequence[Any], page: int, per_page: int) -> tuple[list[Any], dict[str, Any]]:
    chunk = page_of(items, page, per_page)
    start = (page - 1) * per_page
    total = len(items)
    info = {
        "current": page,
        "from": start + 1 if chunk else 0,
        "to": start + len(chunk),
        "total": total,
        "pageSize": per_page,
        "lastPage": max(1, math.ceil(total / per_page)),
    }
    return chunk, info


class GoRulesState:
    """
    Everything the emulated BRMS knows; every public method takes the shared lock.

    :param core: the emulator's shared lock, clock and token.
    """

    def __init__(self, core: Core) -> None:
        self.core = core
        self.lock = core.lock
        self._projects: dict[str, Project] = {}
        self._ids: random.Random | None = None

    def seed_ids(self, seed: int | str | None) -> None:
        """Draw every new id (projects, environments, releases, runs, jobs) from a generator seeded with ``seed``,
        so the same calls give the same ids in every run (None: random uuids again)."""
        with self.lock:
            self._ids = None if seed is None else random.Random(f"gorules-ids:{seed}")

    def new_id(self) -> str:
        """A fresh uuid, as the BRMS uses for every id (from the seeded generator when :meth:`seed_ids` set one)."""
        with self.lock:
            if self._ids is None:
                return str(uuid.uuid4())
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    @property
    def token(self) -> str:
        """The only accepted token (the emulator's)."""
        return self.core.token

    def now(self) -> float:
        """The emulated time."""
        return self.core.now()

    # --- set-up -----------------------------------------------------------------------------------
    def add_project(self, spec: GoRulesProjectSpec) -> dict[str, Any]:
        """Create (or replace) a project with its releases; returns ``{"id", "name", "environments": {key: id}}``."""
        with self.lock:
            envs = [Environment(id=env.id or self.new_id(), **env.model_dump(exclude={"id"})) for env in spec.environments]
            project = Project(
                id=spec.id or self.new_id(),
                name=spec.name,
                environments={env.id: env for env in envs},
                deploy_answer=spec.deploy_answer,
                comment_visible=spec.comment_visible,
                created=self.now(),
            )
            self._projects[project.id] = project
            for release in spec.releases:
                self._add_release(project, release)
            return {"id": project.id, "name": project.name, "environments": {env.key: env.id for env in envs}}

    def load(self, projects: Sequence[GoRulesProjectSpec]) -> None:
        """Add a scenario's projects."""
        with self.lock:
            for spec in projects:
                self.add_project(spec)

    def add_release(self, project_id: str, spec: ReleaseSpec) -> str:
        """Create a published release; returns its id."""
        with self.lock:
            return self._add_release(self._project(project_id), spec)

    def _add_release(self, project: Project, spec: ReleaseSpec) -> str:
        release = Release(
            id=spec.id or self.new_id(),
            name=spec.name,
            version=spec.version,
            description=spec.description,
            created=self.now(),
            number=len(project.releases) + 1,
        )
        project.releases[release.id] = release
        return release.id

    def configure(self, project_id: str, settings: GoRulesSettings) -> None:
        """Change how a project's deploy call behaves."""
        with self.lock:
            project = self._project(project_id)
            if settings.deploy_answer is not None:
                project.deploy_answer = settings.deploy_answer
            if settings.comment_visible is not None:
                project.comment_visible = settings.comment_visible

    def describe(self, project_id: str) -> dict[str, Any]:
        """A project's set-up: ids of its environments and releases, and its settings."""
        with self.lock:
            project = self._project(project_id)
            return {
                "id": project.id,
                "name": project.name,
                "environments": [
                    {"key": e.key, "id": e.id, "name": e.name, "review": e.review, "change_request": e.change_request}
                    for e in project.environments.values()
                ],
                "releases": [r.ref() for r in project.releases.values()],
                "change_requests": [cr.view() for cr in project.change_requests],
                "deploy_answer": project.deploy_answer,
                "comment_visible": project.comment_visible,
            }

    def describe_all(self) -> list[dict[str, Any]]:
        """Every project's set-up (:meth:`describe`), oldest first."""
        with self.lock:
            return [self.describe(project_id) for project_id in self._projects]

    # --- lookups -----------------------------------------------------------------------------------
    def _project(self, project_id: str) -> Project:
        found = self._projects.get(project_id)
        if found is None:
            raise ApiError(404, "Project not found")
        return found

    def _runs(self, project: Project) -> list[Run]:
        now = self.now()
        for run in project.runs:
            settle(project, run, now)
        return project.runs

    def _run(self, project: Project, run_id: str) -> Run:
        for run in self._runs(project):
            if run.id == run_id:
                return run
        raise ApiError(404, "Deployment workflow run not found")

    # --- the API -------------------------------------------------------------------------------------
    def projects_view(self, page: int, per_page: int) -> dict[str, Any]:
        """``GET /api/projects``."""
        with self.lock:
            chunk, info = _paginate(list(self._projects.values()), page, per_page)
            return {"results": [p.view() for p in chunk], "paginate": info}

    def runs_view(self, project_id: str, page: int, per_page: int) -> dict[str, Any]:
        """``GET /api/projects/{projectId}/runs``, newest first."""
        with self.lock:
            project = self._project(project_id)
            chunk, info = _paginate(list(reversed(self._runs(project))), page, per_page)
            return {"results": [run_view(project, run) for run in chunk], "paginate": info}

    def run_view(self, project_id: str, run_id: str) -> dict[str, Any]:
        """``GET /api/projects/{projectId}/runs/{runId}``."""
        with self.lock:
            project = self._project(project_id)
            return run_view(project, self._run(project, run_id))

    def cancel_run(self, project_id: str, run_id: str, body: Any, *, by: Mapping[str, Any] = TOKEN_OWNER) -> dict[str, Any]:
        """``POST .../runs/{runId}/cancel`` with ``{"comment"}`` (at least one character)."""
        with self.lock:
            project = self._project(project_id)
            run = self._run(project, run_id)
            comment = body.get("comment") if isinstance(body, dict) else None
            if not isinstance(comment, str) or len(comment) < 1:
                raise ApiError(400, "comment must be longer than or equal to 1 characters")
            if run.status in RUN_FINISHED:
                raise ApiError(400, f"Only in-progress or waiting runs can be cancelled; this run is {run.status}")
            cancel(run, self.now(), comment, dict(by))
            return run_view(project, run)

    def _release_view(self, project: Project, release: Release) -> dict[str, Any]:
        requests = [cr.ref() for cr in project.change_requests if cr.release.id == release.id]
        return release.view(project.id, requests)

    def releases_view(self, project_id: str, page: int, per_page: int) -> dict[str, Any]:
        """``GET /api/projects/{projectId}/releases``, newest first."""
        with self.lock:
            project = self._project(project_id)
            chunk, info = _paginate(list(reversed(project.releases.values())), page, per_page)
            return {"results": [self._release_view(project, release) for release in chunk], "paginate": info}

    def release_view(self, project_id: str, release_id: str) -> dict[str, Any]:
        """``GET /api/projects/{projectId}/releases/{releaseId}``, with its change requests."""
        with self.lock:
            project = self._project(project_id)
            release = project.releases.get(release_id)
            if release is None:
                raise ApiError(404, "Release not found")
            return self._release_view(project, release)

    def environments_view(self, project_id: str) -> list[dict[str, Any]]:
        """``GET /api/projects/{projectId}/environments``: a bare array, in workflow order."""
        with self.lock:
            project = self._project(project_id)
            self._runs(project)  # what each environment runs now
            return [
                environment_view(project, env, order, project.change_requests)
                for order, env in enumerate(project.environments.values(), start=1)
            ]

    def deploy(self, project_id: str, body: Any) -> dict[str, Any]:
        """``POST /api/projects/{projectId}/releases/deploy`` with ``{releaseId, environmentId, comment}``."""
        with self.lock:
            project = self._project(project_id)
            if not isinstance(body, dict):
                raise ApiError(400, "Request body must be a JSON object")
            for key in ("releaseId", "environmentId"):
                if not isinstance(body.get(key), str) or not body[key]:
                    raise ApiError(400, f"{key} must be a UUID")
            comment = body.get("comment")
            if comment is not None and not isinstance(comment, str):
                raise ApiError(400, "comment must be a string")
            env = project.environment(str(body["environmentId"]))
            if env is not None and env.change_request:
                request = self._change_request(project, str(body["releaseId"]), env, comment)
                if project.deploy_answer == "id":
                    return {"id": request.id}
                if project.deploy_answer == "empty":
                    return {}
                return request.view()
            run = self._start(project, str(body["releaseId"]), [str(body["environmentId"])], TOKEN_OWNER, comment)
            if project.deploy_answer == "id":
                return {"id": run.id}
            if project.deploy_answer == "empty":
                return {}
            return run_view(project, run)

    def _start(self, project: Project, release_id: str, environments: Sequence[str], by: Mapping[str, Any], comment: str | None) -> Run:
        release = project.releases.get(release_id)
        if release is None:
            raise ApiError(404, "Release not found")
        targets: list[Environment] = []
        for wanted in environments:
            env = project.environment(wanted)
            if env is None:
                raise ApiError(404, f"Environment not found: {wanted}")
            targets.append(env)
        now = self.now()
        run_id = self.new_id()
        data = {"comment": comment} if comment and project.comment_visible else None
        jobs = [Job(id=self.new_id(), environment=env, order=index, created=now, data=data) for index, env in enumerate(targets)]
        names = ", ".join(env.name for env in targets)
        run = Run(
            id=run_id,
            project_id=project.id,
            release=release,
            jobs=jobs,
            created=now,
            created_by=dict(by),
            name=f"Deploy {release.name} {release.version} to {names}",
            comment=comment,
        )
        project.runs.append(run)
        settle(project, run, now)
        return run

    def _change_request(self, project: Project, release_id: str, env: Environment, comment: str | None) -> ChangeRequest:
        release = project.releases.get(release_id)
        if release is None:
            raise ApiError(404, "Release not found")
        request = ChangeRequest(id=self.new_id(), release=release, environment=env, created=self.now(), created_by=dict(TOKEN_OWNER))
        request.comment = comment
        project.change_requests.append(request)
        return request

    # --- what people do in the BRMS UI -----------------------------------------------------------------
    def review_change_request(self, project_id: str, request_id: str, *, approve: bool = True) -> dict[str, Any]:
        """A reviewer approves (the deployment then runs: a new run, as the emulator plays it) or rejects a pending
        change request."""
        with self.lock:
            project = self._project(project_id)
            request = next((cr for cr in project.change_requests if cr.id == request_id), None)
            if request is None:
                raise ApiError(404, f"Change request {request_id} not found")
            if request.status != "pending":
                raise ApiError(400, f"Change request {request_id} is {request.status}, not pending")
            if not approve:
                request.status = "rejected"
                return request.view()
            request.status = "completed"
            run = self._start(project, request.release.id, [request.environment.id], request.created_by, request.comment)
            request.run_id = run.id
            return {**request.view(), "runId": run.id}

    def start_run(self, project_id: str, release_id: str, environments: Sequence[str], comment: str | None = None) -> dict[str, Any]:
        """Start a workflow run over several environments, as someone in the BRMS UI would."""
        with self.lock:
            project = self._project(project_id)
            return run_view(project, self._start(project, release_id, environments, REVIEWER, comment))

    def review(self, project_id: str, run_id: str, environment: str, *, approve: bool = True, comment: str | None = None) -> dict[str, Any]:
        """A reviewer approves (or rejects) the waiting job for ``environment`` (key or id)."""
        with self.lock:
            project = self._project(project_id)
            run = self._run(project, run_id)
            env = project.environment(environment)
            job = next((j for j in run.jobs if env is not None and j.environment.id == env.id), None)
            if job is None:
                raise ApiError(404, f"Run {run_id} has no job for environment {environment!r}")
            if job.status != "waiting":
                raise ApiError(400, f"The job for {environment!r} is not waiting for a review (it is {job.status})")
            review(run, job, self.now(), approve=approve, comment=comment, reviewer=REVIEWER)
            settle(project, run, self.now())
            return run_view(project, run)

    def all_runs(self, project_id: str) -> list[dict[str, Any]]:
        """Every run of a project, newest first."""
        with self.lock:
            project = self._project(project_id)
            return [run_view(project, run) for run in reversed(self._runs(project))]

    def deployed(self, project_id: str) -> dict[str, str]:
        """What each environment (by key) runs now: ``{key: release_id}``."""
        with self.lock:
            project = self._project(project_id)
            self._runs(project)
            return {project.environments[env_id].key: release.id for env_id, release in project.deployed.items()}
