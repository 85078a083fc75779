"""The Starlette app serving the emulated Buddy.Works REST API (routes -> :class:`EmulatorState`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_buddy.testing.runs import ApiError
from airflow_provider_buddy.testing.state import EmulatorState

UNAUTHORIZED = "Unauthorized. Token is invalid or expired"
API_DISABLED = "API is disabled in this workspace"
DEFAULT_PER_PAGE = 20

Action = Callable[[Request, Any], Any]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A Buddy-style error: ``{"errors": [{"message": ...}]}``."""
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def int_param(request: Request, name: str, default: int, minimum: int) -> int:
    """An integer query parameter, or 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    return value


async def json_body(request: Request) -> Any:
    """The request's JSON body (None when empty), or 400."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Request body is not valid JSON") from None


def _missing_scope(scope: str) -> str:
    return f"Access denied: the token lacks the {scope} scope and cannot receive data"


def build_api(state: EmulatorState) -> Starlette:
    """
    Build the API app (paths relative to the base path).

    :param state: the emulated workspace.
    """

    def guard(request: Request, scope: str) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != state.token:
            raise ApiError(401, UNAUTHORIZED)
        if state.api_disabled:
            raise ApiError(403, API_DISABLED)
        for needed in ("WORKSPACE", scope):
            if needed not in state.scopes:
                raise ApiError(403, _missing_scope(needed))

    def endpoint(scope: str, action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                guard(request, scope)
                body = await json_body(request) if request.method in ("POST", "PATCH", "PUT") else None
                return JSONResponse(action(request, body))
            except ApiError as exc:
                return error_response(exc.status, exc.message)

        return handle

    def p(request: Request, name: str) -> str:
        value: str = request.path_params[name]
        return value

    def pipeline_args(request: Request) -> tuple[str, str, str]:
        return p(request, "ws"), p(request, "project"), p(request, "pipeline")

    def execution_args(request: Request) -> tuple[str, str, str, str]:
        return (*pipeline_args(request), p(request, "execution"))

    def paging(request: Request) -> tuple[int, int]:
        return int_param(request, "page", 1, 1), int_param(request, "per_page", DEFAULT_PER_PAGE, 1)

    def logs(request: Request, _: Any) -> Any:
        offset = int_param(request, "offset", 0, 0)
        limit = int_param(request, "limit", 1000, 1)
        return state.logs_view(*execution_args(request), p(request, "action_execution"), offset, limit)

    pipelines = "/workspaces/{ws}/projects/{project}/pipelines"
    pipeline = pipelines + "/{pipeline}"
    execution = pipeline + "/executions/{execution}"
    action_execution = execution + "/action_executions/{action_execution}"
    info, run, manage = "EXECUTION_INFO", "EXECUTION_RUN", "EXECUTION_MANAGE"
    routes = [
        Route("/user", endpoint("WORKSPACE", lambda r, b: state.user_view()), methods=["GET"]),
        Route("/workspaces", endpoint("WORKSPACE", lambda r, b: state.workspaces_view()), methods=["GET"]),
        Route(
            "/workspaces/{ws}",
            endpoint("WORKSPACE", lambda r, b: state.workspace_view(p(r, "ws"))),
            methods=["GET"],
        ),
        Route(
            "/workspaces/{ws}/projects",
            endpoint("WORKSPACE", lambda r, b: state.projects_view(p(r, "ws"))),
            methods=["GET"],
        ),
        Route(
            "/workspaces/{ws}/projects/{project}",
            endpoint("WORKSPACE", lambda r, b: state.project_view(p(r, "ws"), p(r, "project"))),
            methods=["GET"],
        ),
        Route(
            pipelines,
            endpoint(info, lambda r, b: state.pipelines_view(p(r, "ws"), p(r, "project"), *paging(r))),
            methods=["GET"],
        ),
        Route(pipeline, endpoint(info, lambda r, b: state.pipeline_view(*pipeline_args(r))), methods=["GET"]),
        Route(pipeline, endpoint(manage, lambda r, b: state.clear_cache(*pipeline_args(r), b)), methods=["PATCH"]),
        Route(
            pipeline + "/executions",
            endpoint(info, lambda r, b: state.executions_view(*pipeline_args(r), *paging(r))),
            methods=["GET"],
        ),
        Route(
            pipeline + "/executions",
            endpoint(run, lambda r, b: state.run(*pipeline_args(r), b)),
            methods=["POST"],
        ),
        Route(execution, endpoint(info, lambda r, b: state.execution_view(*execution_args(r))), methods=["GET"]),
        Route(
            execution,
            endpoint(run, lambda r, b: state.patch_execution(*execution_args(r), b)),
            methods=["PATCH"],
        ),
        Route(
            action_execution,
            endpoint(
                info,
                lambda r, b: state.action_execution_view(*execution_args(r), p(r, "action_execution")),
            ),
            methods=["GET"],
        ),
        Route(action_execution + "/logs", endpoint(info, logs), methods=["GET"]),
    ]
    from airflow_provider_buddy.testing.gorules_app import gorules_routes
    from airflow_provider_buddy.testing.gorules_state import gorules_state

    routes.extend(gorules_routes(gorules_state(state)))  # GoRules BRMS, served by the same server
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    return error_response(status, message)
