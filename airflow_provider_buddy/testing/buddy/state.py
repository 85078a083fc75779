"""The emulated Buddy.Works workspace: projects, pipelines and executions, behind the emulator's shared lock."""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_buddy.testing._core import ApiError, Core, page_of
from airflow_provider_buddy.testing.buddy import runs
from airflow_provider_buddy.testing.buddy.options import parse_run_options, parse_variables
from airflow_provider_buddy.testing.buddy.runs import BUDDY_USER_ID, TOKEN_OWNER_ID, ActionRun, Execution
from airflow_provider_buddy.testing.buddy.specs import PipelineSpec, ProjectSpec, VariableSpec
from airflow_provider_buddy.testing.buddy.views import (
    Site,
    action_execution_view,
    execution_view,
    log_lines,
    member,
    pipeline_view,
)
from airflow_provider_buddy.testing.clock import iso

ALL_SCOPES = frozenset({"WORKSPACE", "EXECUTION_INFO", "EXECUTION_RUN", "EXECUTION_MANAGE"})
MAX_LOG_LIMIT = 1000
IDENTIFIER_MISSES = ("404", "empty")
"""How the identifiers lookup answers an unknown identifier (not documented): 404, or 200 without the id."""
DELAYED_STATUSES = ("ENQUEUED", "INITIAL")
"""What a run scheduled with ``delay_until`` shows until it starts (not documented)."""
SETTABLE_OPERATIONS = ("SET_VARIABLES", "APPLY_VARIABLES")
"""Which operation answers WAITING_FOR_SETTABLE_VARIABLES (not documented)."""


@dataclass
class _Project:
    name: str
    display_name: str
    pipelines: dict[int, PipelineSpec] = field(default_factory=dict)


class BuddyState:
    """
    Everything the emulated workspace knows; every public method takes the shared lock.

    :param core: the emulator's shared lock, clock, token and API URL.
    :param workspace: the workspace's name.
    """

    def __init__(self, core: Core, workspace: str) -> None:
        self.core = core
        self.lock = core.lock
        self.clock = core.clock
        self.workspace = workspace
        self.api_disabled = False
        self.scopes: set[str] = set(ALL_SCOPES)
        self.identifiers_missing = "404"
        self.identifiers_see_hidden = True
        self.delayed_status = "ENQUEUED"
        self.settable_variables_operation = "SET_VARIABLES"
        self.created = self.clock.now()
        self._projects: dict[str, _Project] = {}
        self._executions: dict[tuple[str, int], list[Execution]] = {}
        self._cache_clears: dict[tuple[str, int], int] = {}
        self._execution_ids = itertools.count(1)
        self._object_ids = itertools.count(1)
        self._id_salt = hashlib.sha1(f"{workspace}:{self.created}".encode(), usedforsecurity=False).hexdigest()[:10]

    # --- set-up -------------------------------------------------------------------------------------

    @property
    def site(self) -> Site:
        """URLs of the emulated workspace."""
        return Site(self.core.api_base, self.workspace)

    def add_project(self, name: str, display_name: str = "") -> None:
        """Create a project (no-op when it exists)."""
        with self.lock:
            if name not in self._projects:
                self._projects[name] = _Project(name, display_name or name)

    def add_pipeline(self, project: str, pipeline: PipelineSpec) -> None:
        """Create or replace a pipeline (runs already started keep the old definition)."""
        with self.lock:
            self.add_project(project)
            self._projects[project].pipelines[pipeline.id] = pipeline

    def load(self, workspace: str, projects: list[ProjectSpec]) -> None:
        """Adopt a scenario's workspace and add its projects and pipelines."""
        with self.lock:
            self.workspace = workspace
            for project in projects:
                self.add_project(project.name, project.display_name)
                for pipeline in project.pipelines:
                    self.add_pipeline(project.name, pipeline)

    # --- lookups --------------------------------------------------------------------------------------

    def _check_workspace(self, workspace: str) -> None:
        if workspace != self.workspace:
            raise ApiError(404, "Workspace not found")

    def _project(self, workspace: str, project: str) -> _Project:
        self._check_workspace(workspace)
        found = self._projects.get(project)
        if found is None:
            raise ApiError(404, "Project not found")
        return found

    def _pipeline(self, workspace: str, project: str, pipeline_id: int | str) -> PipelineSpec:
        pipelines = self._project(workspace, project).pipelines
        try:
            found = pipelines.get(int(pipeline_id))
        except ValueError:
            found = None
        if found is None:
            raise ApiError(404, "Pipeline not found")
        return found

    def _runs(self, project: str, pipeline_id: int) -> list[Execution]:
        now = self.clock.now()
        executions = self._executions.get((project, pipeline_id), [])
        for execution in executions:
            runs.settle(execution, now)
        return executions

    def _last(self, project: str, pipeline_id: int) -> Execution | None:
        executions = self._runs(project, pipeline_id)
        return executions[-1] if executions else None

    def _execution(self, workspace: str, project: str, pipeline_id: int | str, execution_id: int | str) -> Execution:
        pipeline = self._pipeline(workspace, project, pipeline_id)
        try:
            wanted = int(execution_id)
        except ValueError:
            wanted = -1
        for execution in self._runs(project, pipeline.id):
            if execution.id == wanted:
                return execution
        raise ApiError(404, "Execution not found")

    def _action_run(self, execution: Execution, action_execution_id: str) -> ActionRun:
        for run in execution.actions:
            if run.action_execution_id == action_execution_id:
                return run
        raise ApiError(404, "Action execution not found")

    def _object_id(self, moment: float) -> str:
        """A 24-hex id shaped like Buddy's (a MongoDB ObjectId: time, then a per-process part, then a counter)."""
        return f"{int(moment) & 0xFFFFFFFF:08x}{self._id_salt}{next(self._object_ids) & 0xFFFFFF:06x}"

    def _view(self, execution: Execution) -> dict[str, Any]:
        last = self._last(execution.project, execution.pipeline.id)
        return execution_view(self.site, execution, self.clock.now(), last)

    # --- workspace and projects -------------------------------------------------------------------------

    def workspaces_view(self) -> dict[str, Any]:
        """``GET /workspaces``."""
        with self.lock:
            return {"url": f"{self.core.api_base}/workspaces", "workspaces": [self._workspace_short()]}

    def _workspace_short(self) -> dict[str, Any]:
        return {
            "url": self.site.api(""),
            "html_url": self.site.html(""),
            "id": 1,
            "name": self.workspace,
            "domain": self.workspace,
        }

    def workspace_view(self, workspace: str) -> dict[str, Any]:
        """``GET /workspaces/{ws}``."""
        with self.lock:
            self._check_workspace(workspace)
            view = self._workspace_short()
            view.update(owner_id=TOKEN_OWNER_ID, frozen=False, create_date=iso(self.created))
            return view

    def user_view(self) -> dict[str, Any]:
        """``GET /user``: the token's owner."""
        with self.lock:
            return member(self.site, TOKEN_OWNER_ID)

    def _project_view(self, project: _Project) -> dict[str, Any]:
        return {
            "url": self.site.api(f"/projects/{project.name}"),
            "html_url": self.site.html(f"/projects/{project.name}"),
            "name": project.name,
            "display_name": project.display_name,
            "status": "ACTIVE",
        }

    def projects_view(self, workspace: str) -> dict[str, Any]:
        """``GET /workspaces/{ws}/projects``."""
        with self.lock:
            self._check_workspace(workspace)
            return {
                "url": self.site.api("/projects"),
                "html_url": self.site.html("/projects"),
                "projects": [self._project_view(p) for p in self._projects.values()],
            }

    def project_view(self, workspace: str, project: str) -> dict[str, Any]:
        """``GET /workspaces/{ws}/projects/{p}``."""
        with self.lock:
            return self._project_view(self._project(workspace, project))

    # --- pipelines ---------------------------------------------------------------------------------------

    def _pipeline_view(self, project: str, pipeline: PipelineSpec, *, with_actions: bool) -> dict[str, Any]:
        last = self._last(project, pipeline.id)
        return pipeline_view(self.site, project, pipeline, last, self.created, with_actions=with_actions)

    def pipelines_view(self, workspace: str, project: str, page: int, per_page: int) -> dict[str, Any]:
        """``GET .../pipelines?page=&per_page=``."""
        with self.lock:
            found = self._project(workspace, project)
            visible = [pipeline for pipeline in found.pipelines.values() if not pipeline.hidden]  # "hidden ... will not be fetched"
            pipelines = page_of(visible, page, per_page)
            return {
                "url": self.site.api(f"/projects/{project}/pipelines"),
                "html_url": self.site.html(f"/{project}/pipelines"),
                "pipelines": [self._pipeline_view(project, p, with_actions=False) for p in pipelines],
            }

    def identifiers_view(self, workspace: str, project: str | None, pipeline: str | None, environment: str | None) -> dict[str, Any]:
        """``GET /workspaces/{ws}/identifiers?project=&pipeline=``: the ids of the objects named (only those asked about)."""
        with self.lock:
            self._check_workspace(workspace)
            view: dict[str, Any] = {"url": self.site.api(""), "html_url": self.site.html(""), "domain": self.workspace}
            if project is None:
                return view
            found = self._projects.get(project)
            if found is None:
                return self._identifier_missing(view, f"Project {project!r} not found")
            view.update(url=self.site.api(f"/projects/{project}"), html_url=self.site.html(f"/{project}"), project_identifier=project)
            if pipeline is not None:
                match = next((p for p in found.pipelines.values() if p.identifier == pipeline), None)
                if match is None or (match.hidden and not self.identifiers_see_hidden):
                    return self._identifier_missing(view, f"Pipeline {pipeline!r} not found")
                view.update(
                    url=self.site.api(f"/projects/{project}/pipelines/{match.id}"),
                    html_url=self.site.html(f"/{project}/pipelines/pipeline/{match.id}"),
                    pipeline_id=match.id,
                )
            if environment is not None:
                view["environment_id"] = hashlib.sha1(f"{project}:{environment}".encode(), usedforsecurity=False).hexdigest()[:8]
            return view

    def _identifier_missing(self, view: dict[str, Any], message: str) -> dict[str, Any]:
        if self.identifiers_missing == "404":
            raise ApiError(404, message)
        return view

    def pipeline_view(self, workspace: str, project: str, pipeline_id: int | str) -> dict[str, Any]:
        """``GET .../pipelines/{id}``."""
        with self.lock:
            pipeline = self._pipeline(workspace, project, pipeline_id)
            return self._pipeline_view(project, pipeline, with_actions=True)

    def clear_cache(self, workspace: str, project: str, pipeline_id: int | str, body: Any) -> dict[str, Any]:
        """``PATCH .../pipelines/{id}`` with ``{"clear_cache": true}``."""
        with self.lock:
            pipeline = self._pipeline(workspace, project, pipeline_id)
            if not isinstance(body, dict) or body.get("clear_cache") is not True:
                raise ApiError(400, 'Only {"clear_cache": true} is supported on this pipeline')
            key = (project, pipeline.id)
            self._cache_clears[key] = self._cache_clears.get(key, 0) + 1
            return self._pipeline_view(project, pipeline, with_actions=True)

    def cache_clears(self, project: str, pipeline_id: int) -> int:
        """How many times the pipeline's cache was cleared."""
        with self.lock:
            return self._cache_clears.get((project, pipeline_id), 0)

    # --- executions -------------------------------------------------------------------------------------

    def run(
        self,
        workspace: str,
        project: str,
        pipeline_id: int | str,
        body: Any,
        *,
        triggered_on: str = "API",
        creator_id: int = TOKEN_OWNER_ID,
    ) -> dict[str, Any]:
        """``POST .../executions``: start a run."""
        with self.lock:
            pipeline = self._pipeline(workspace, project, pipeline_id)
            if pipeline.disabled:
                reason = f": {pipeline.disabled_reason}" if pipeline.disabled_reason else ""
                raise ApiError(400, f"Pipeline is disabled{reason}")
            options = parse_run_options(body, pipeline)
            now = self.clock.now()
            selected = [a for a in pipeline.actions if options.actions_to_run is None or a.id in options.actions_to_run]
            action_runs = [ActionRun(spec, self._object_id(now)) for spec in selected]
            start_at = now + pipeline.enqueued_for
            scheduled = options.delay_until is not None and options.delay_until > now
            if options.delay_until is not None:
                start_at = max(start_at, options.delay_until)
            execution = Execution(
                id=next(self._execution_ids),
                object_id=self._object_id(now),
                project=project,
                pipeline=pipeline,
                options=options,
                triggered_on=triggered_on,
                creator_id=creator_id,
                created=now,
                start_at=start_at,
                actions=action_runs,
                outcome=pipeline.outcome,
                fail_index=runs.fail_index(action_runs, pipeline.outcome, pipeline.fail_action),
            )
            if scheduled:
                execution.status = self.delayed_status
            self._executions.setdefault((project, pipeline.id), []).append(execution)
            runs.settle(execution, now)
            return self._view(execution)

    def start_in_buddy(self, project: str, pipeline_id: int | str, body: Any) -> dict[str, Any]:
        """A person starts a run in Buddy's UI (``triggered_on`` "CLICK"); ``body`` as the API's run body."""
        return self.run(self.workspace, project, pipeline_id, body, triggered_on="CLICK", creator_id=BUDDY_USER_ID)

    def executions_view(self, workspace: str, project: str, pipeline_id: int | str, page: int, per_page: int) -> dict[str, Any]:
        """``GET .../executions?page=&per_page=``, newest first."""
        with self.lock:
            pipeline = self._pipeline(workspace, project, pipeline_id)
            newest_first = list(reversed(self._runs(project, pipeline.id)))
            total = len(newest_first)
            shown = page_of(newest_first, page, per_page)
            return {
                "url": self.site.api(f"/projects/{project}/pipelines/{pipeline.id}/executions"),
                "html_url": self.site.html(f"/{project}/pipelines/pipeline/{pipeline.id}/executions"),
                "page": page,
                "page_size": per_page,
                "total_page_count": math.ceil(total / per_page),
                "element_count": len(shown),
                "total_element_count": total,
                "executions": [self._view(e) for e in shown],
            }

    def all_executions(self, project: str, pipeline_id: int) -> list[dict[str, Any]]:
        """Every execution of a pipeline, newest first."""
        with self.lock:
            pipeline = self._pipeline(self.workspace, project, pipeline_id)
            return [self._view(e) for e in reversed(self._runs(project, pipeline.id))]

    def execution_view(self, workspace: str, project: str, pipeline_id: int | str, execution_id: int | str) -> dict[str, Any]:
        """``GET .../executions/{id}``."""
        with self.lock:
            return self._view(self._execution(workspace, project, pipeline_id, execution_id))

    def patch_execution(
        self,
        workspace: str,
        project: str,
        pipeline_id: int | str,
        execution_id: int | str,
        body: Any,
        *,
        approver_id: int = TOKEN_OWNER_ID,
    ) -> dict[str, Any]:
        """``PATCH .../executions/{id}``: CANCEL, RETRY, RUN_DELAYED, or an answer to a wait (APPLY, APPLY_VARIABLES,
        SET_VARIABLES, APPROVE_VT)."""
        with self.lock:
            execution = self._execution(workspace, project, pipeline_id, execution_id)
            if not isinstance(body, dict):
                raise ApiError(400, "Request body must be a JSON object")
            operation = body.get("operation")
            if operation not in runs.OPERATIONS:
                raise ApiError(400, f"operation must be one of {', '.join(runs.OPERATIONS)}, got {operation!r}")
            now = self.clock.now()
            if operation == "CANCEL":
                runs.cancel(execution, now)
            elif operation == "RETRY":
                runs.retry(execution, now)
            elif operation == "RUN_DELAYED":
                runs.run_delayed(execution, now)
            else:
                variables = parse_variables(body.get("variables"))
                if operation in ("APPLY_VARIABLES", "SET_VARIABLES") and not variables:
                    raise ApiError(400, f"variables are required for {operation}")
                approve_id = body.get("approve_action_id")
                runs.approve(execution, now, str(operation), variables, approve_id, approver_id, self._answers())
            return self._view(execution)

    def _answers(self) -> dict[str, tuple[str, ...]]:
        return {**runs.ANSWERS, "WAITING_FOR_SETTABLE_VARIABLES": (self.settable_variables_operation,)}

    def approve_in_buddy(self, project: str, pipeline_id: int, execution_id: int, variables: list[VariableSpec] | None) -> dict[str, Any]:
        """A person approves the waiting action in Buddy's UI (either kind of wait)."""
        with self.lock:
            execution = self._execution(self.workspace, project, pipeline_id, execution_id)
            runs.approve(execution, self.clock.now(), None, variables, None, BUDDY_USER_ID)
            return self._view(execution)

    def action_execution_view(
        self, workspace: str, project: str, pipeline_id: int | str, execution_id: int | str, action_execution_id: str
    ) -> dict[str, Any]:
        """``GET .../executions/{id}/action_executions/{aeid}``."""
        with self.lock:
            execution = self._execution(workspace, project, pipeline_id, execution_id)
            run = self._action_run(execution, action_execution_id)
            return action_execution_view(self.site, execution, run, self.clock.now())

    def logs_view(
        self,
        workspace: str,
        project: str,
        pipeline_id: int | str,
        execution_id: int | str,
        action_execution_id: str,
        offset: int,
        limit: int,
    ) -> dict[str, Any]:
        """``GET .../action_executions/{aeid}/logs?offset=&limit=``."""
        if limit > MAX_LOG_LIMIT:
            raise ApiError(400, f"limit must not exceed {MAX_LOG_LIMIT}")
        with self.lock:
            execution = self._execution(workspace, project, pipeline_id, execution_id)
            run = self._action_run(execution, action_execution_id)
            lines = log_lines(run, self.clock.now())
            chunk = lines[offset : offset + limit]
            return {
                "offset": offset,
                "element_count": len(chunk),
                "total_element_count": len(lines),
                "logs": chunk,
            }


CHOICES: dict[str, tuple[Any, ...]] = {
    "identifiers_missing": IDENTIFIER_MISSES,
    "identifiers_see_hidden": (True, False),
    "delayed_status": DELAYED_STATUSES,
    "settable_variables_operation": SETTABLE_OPERATIONS,
}
"""What the emulated Buddy can be told to play where its docs are silent, and the values each takes."""


def configure_state(state: BuddyState, settings: dict[str, Any]) -> None:
    """Apply the given (non-None) :data:`CHOICES` settings; ValueError naming the setting for a value outside them."""
    for name, value in settings.items():
        if value is None:
            continue
        allowed = CHOICES.get(name)
        if allowed is None:
            raise ValueError(f"unknown Buddy setting {name!r}; known: {', '.join(CHOICES)}")
        if value not in allowed or (isinstance(value, bool) != isinstance(allowed[0], bool)):
            raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
    with state.lock:
        for name, value in settings.items():
            if value is not None:
                setattr(state, name, value)
