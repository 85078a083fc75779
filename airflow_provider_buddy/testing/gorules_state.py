"""The emulated GoRules BRMS: projects, environments, releases and runs, beside the Buddy workspace.

It shares the Buddy emulator's lock, clock and token (one server, one token), and is reached through
:func:`gorules_state` so the Buddy state needs no knowledge of it.
"""

from __future__ import annotations

import math
import random
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_buddy.testing.gorules_runs import (
    DEPLOY_ANSWERS,
    REVIEWER,
    RUN_FINISHED,
    TOKEN_OWNER,
    Environment,
    Job,
    Project,
    Release,
    Run,
    cancel,
    new_id,
    review,
    run_view,
    settle,
)
from airflow_provider_buddy.testing.runs import ApiError
from airflow_provider_buddy.testing.state import EmulatorState

_STATES: weakref.WeakKeyDictionary[EmulatorState, GoRulesState] = weakref.WeakKeyDictionary()


def gorules_state(state: EmulatorState) -> GoRulesState:
    """The GoRules side of an emulator (created on first use)."""
    with state.lock:
        found = _STATES.get(state)
        if found is None:
            found = _STATES[state] = GoRulesState(state)
        return found


def _paginate(items: Sequence[Any], page: int, per_page: int) -> tuple[list[Any], dict[str, Any]]:
    start = (page - 1) * per_page
    chunk = list(items[start : start + per_page])
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


def _environment(data: Mapping[str, Any] | str, index: int, make_id: Callable[[], str]) -> Environment:
    if isinstance(data, str):
        data = {"key": data}
    key = str(data.get("key") or f"env{index + 1}")
    return Environment(
        id=str(data.get("id") or make_id()),
        key=key,
        name=str(data.get("name") or key.capitalize()),
        review=bool(data.get("review", False)),
        duration=float(data.get("duration", 1.0)),
        fails=bool(data.get("fails", False)),
        error=str(data.get("error") or Environment.error),
    )


class GoRulesState:
    """
    Everything the GoRules side knows; every public method takes the shared lock.

    :param base: the Buddy emulator's state (its lock, clock and token are shared).
    """

    def __init__(self, base: EmulatorState) -> None:
        self.base = base
        self.lock = base.lock
        self._projects: dict[str, Project] = {}
        self._ids: random.Random | None = None

    def seed_ids(self, seed: int | str | None) -> None:
        """Draw every new id (projects, environments, releases, runs, jobs) from a generator seeded with ``seed``,
        so the same calls give the same ids in every run (None: random uuids again)."""
        with self.lock:
            self._ids = None if seed is None else random.Random(f"gorules-ids:{seed}")

    def new_id(self) -> str:
        """A fresh uuid (from the seeded generator when :meth:`seed_ids` set one)."""
        with self.lock:
            if self._ids is None:
                return new_id()
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    @property
    def token(self) -> str:
        """The only accepted token (the emulator's)."""
        return self.base.token

    def now(self) -> float:
        """The emulated time."""
        return self.base.clock.now()

    # --- set-up -----------------------------------------------------------------------------------
    def add_project(
        self,
        name: str,
        environments: Sequence[Mapping[str, Any] | str],
        *,
        project_id: str | None = None,
        deploy_answer: str = "run",
        comment_visible: bool = True,
    ) -> dict[str, Any]:
        """Create (or replace) a project; returns ``{"id", "name", "environments": {key: id}}``."""
        if deploy_answer not in DEPLOY_ANSWERS:
            raise ValueError(f"deploy_answer must be one of {', '.join(DEPLOY_ANSWERS)}, got {deploy_answer!r}")
        envs = [_environment(item, index, self.new_id) for index, item in enumerate(environments)]
        if len({env.key for env in envs}) != len(envs):
            raise ValueError("environment keys must be unique within a project")
        with self.lock:
            project = Project(
                id=project_id or self.new_id(),
                name=name,
                environments={env.id: env for env in envs},
                deploy_answer=deploy_answer,
                comment_visible=comment_visible,
                created=self.now(),
            )
            self._projects[project.id] = project
            return {"id": project.id, "name": name, "environments": {env.key: env.id for env in envs}}

    def add_release(self, project_id: str, name: str, version: str, *, release_id: str | None = None, description: str = "") -> str:
        """Create a published release; returns its id."""
        with self.lock:
            project = self._project(project_id)
            release = Release(id=release_id or self.new_id(), name=name, version=version, description=description, created=self.now())
            project.releases[release.id] = release
            return release.id

    def configure(self, project_id: str, *, deploy_answer: str | None = None, comment_visible: bool | None = None) -> None:
        """Change how a project's deploy call behaves."""
        with self.lock:
            project = self._project(project_id)
            if deploy_answer is not None:
                if deploy_answer not in DEPLOY_ANSWERS:
                    raise ValueError(f"deploy_answer must be one of {', '.join(DEPLOY_ANSWERS)}, got {deploy_answer!r}")
                project.deploy_answer = deploy_answer
            if comment_visible is not None:
                project.comment_visible = comment_visible

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

    def releases_view(self, project_id: str, page: int, per_page: int) -> dict[str, Any]:
        """``GET /api/projects/{projectId}/releases``, newest first."""
        with self.lock:
            project = self._project(project_id)
            chunk, info = _paginate(list(reversed(project.releases.values())), page, per_page)
            return {"results": [release.view(project.id) for release in chunk], "paginate": info}

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

    # --- what people do in the BRMS UI -----------------------------------------------------------------
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
