"""The routes of the emulated Buddy.Works REST API (-> :class:`BuddyState`), relative to the base path."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from airflow_provider_buddy.testing._core import ApiError
from airflow_provider_buddy.testing._routing import Action, Handler, endpoint, int_param, paging, require_bearer
from airflow_provider_buddy.testing._routing import path_param as p
from airflow_provider_buddy.testing.buddy.state import BuddyState

UNAUTHORIZED = "Unauthorized. Token is invalid or expired"
API_DISABLED = "API is disabled in this workspace"
DEFAULT_PER_PAGE = 20


SCOPE_ALIASES: dict[str, tuple[str, ...]] = {
    "EXECUTION_INFO": ("PIPELINE_READ",),
    "EXECUTION_RUN": ("PIPELINE_RUN",),
    "EXECUTION_MANAGE": ("PIPELINE_WRITE", "PIPELINE_MANAGE"),
}
"""The newer scope names (bdy CLI docs: PIPELINE_READ/WRITE/MANAGE; PIPELINE_RUN per the issue, unverified) accepted in
place of the classic ones; how they map is not documented."""


def _missing_scope(scope: str) -> str:
    alternatives = " or ".join(SCOPE_ALIASES.get(scope, ()))
    named = f"{scope} (or {alternatives})" if alternatives else scope
    return f"Access denied: the token lacks the {named} scope and cannot receive data"


def buddy_routes(state: BuddyState) -> list[Route]:
    """
    The Buddy API's routes.

    :param state: the emulated workspace.
    """

    def endpoint_for(scope: str, action: Action) -> Handler:
        def guard(request: Request) -> None:
            require_bearer(request, state.core.token, UNAUTHORIZED)
            if state.api_disabled:
                raise ApiError(403, API_DISABLED)
            for needed in dict.fromkeys(("WORKSPACE", scope)):
                if needed not in state.scopes and not state.scopes.intersection(SCOPE_ALIASES.get(needed, ())):
                    raise ApiError(403, _missing_scope(needed))

        return endpoint(action, guard=guard)

    def pipeline_args(request: Request) -> tuple[str, str, str]:
        return p(request, "ws"), p(request, "project"), p(request, "pipeline")

    def execution_args(request: Request) -> tuple[str, str, str, str]:
        return (*pipeline_args(request), p(request, "execution"))

    def pages(request: Request) -> tuple[int, int]:
        return paging(request, "per_page", DEFAULT_PER_PAGE)

    def logs(request: Request, _: Any) -> Any:
        offset = int_param(request, "offset", 0, 0)
        limit = int_param(request, "limit", 1000, 1)
        return state.logs_view(*execution_args(request), p(request, "action_execution"), offset, limit)

    def identifiers(request: Request, _: Any) -> Any:
        query = request.query_params
        return state.identifiers_view(p(request, "ws"), query.get("project"), query.get("pipeline"), query.get("environment"))

    pipelines = "/workspaces/{ws}/projects/{project}/pipelines"
    pipeline = pipelines + "/{pipeline}"
    execution = pipeline + "/executions/{execution}"
    action_execution = execution + "/action_executions/{action_execution}"
    workspace, info, run, manage = "WORKSPACE", "EXECUTION_INFO", "EXECUTION_RUN", "EXECUTION_MANAGE"
    table: list[tuple[str, str, str, Action]] = [
        ("GET", "/user", workspace, lambda r, b: state.user_view()),
        ("GET", "/workspaces", workspace, lambda r, b: state.workspaces_view()),
        ("GET", "/workspaces/{ws}", workspace, lambda r, b: state.workspace_view(p(r, "ws"))),
        ("GET", "/workspaces/{ws}/identifiers", workspace, identifiers),
        ("GET", "/workspaces/{ws}/projects", workspace, lambda r, b: state.projects_view(p(r, "ws"))),
        ("GET", "/workspaces/{ws}/projects/{project}", workspace, lambda r, b: state.project_view(p(r, "ws"), p(r, "project"))),
        ("GET", pipelines, info, lambda r, b: state.pipelines_view(p(r, "ws"), p(r, "project"), *pages(r))),
        ("GET", pipeline, info, lambda r, b: state.pipeline_view(*pipeline_args(r))),
        ("PATCH", pipeline, manage, lambda r, b: state.clear_cache(*pipeline_args(r), b)),
        ("GET", pipeline + "/executions", info, lambda r, b: state.executions_view(*pipeline_args(r), *pages(r))),
        ("POST", pipeline + "/executions", run, lambda r, b: state.run(*pipeline_args(r), b)),
        ("GET", execution, info, lambda r, b: state.execution_view(*execution_args(r))),
        ("PATCH", execution, run, lambda r, b: state.patch_execution(*execution_args(r), b)),
        ("GET", action_execution, info, lambda r, b: state.action_execution_view(*execution_args(r), p(r, "action_execution"))),
        ("GET", action_execution + "/logs", info, logs),
    ]
    return [Route(path, endpoint_for(scope, action), methods=[method]) for method, path, scope, action in table]
