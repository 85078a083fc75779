"""Routes of the emulated GoRules BRMS API, served by the same server as the Buddy API.

Every route exists twice: under ``/api/projects/...`` (the emulator's URL given as the BRMS URL, the
client adding ``/api``) and under ``/projects/...`` (an emulator whose base path already is ``/api``).
Errors are answered as ``{"statusCode", "message"}``; the token is the emulator's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_buddy.testing.app import int_param, json_body
from airflow_provider_buddy.testing.gorules_state import GoRulesState
from airflow_provider_buddy.testing.runs import ApiError

DEFAULT_PER_PAGE = 10

Action = Callable[[Request, Any], Any]


def gorules_error(status: int, message: str) -> JSONResponse:
    """An error answer in the BRMS's (NestJS) style."""
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


def gorules_routes(state: GoRulesState) -> list[Route]:
    """
    The GoRules routes, to add to the emulator's API app.

    :param state: the emulated BRMS.
    """

    def endpoint(action: Action, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or token.strip() != state.token:
                return gorules_error(401, "Unauthorized")
            try:
                body = await json_body(request) if request.method == "POST" else None
                return JSONResponse(action(request, body), status_code=status)
            except ApiError as exc:
                return gorules_error(exc.status, exc.message)

        return handle

    def p(request: Request, name: str) -> str:
        value: str = request.path_params[name]
        return value

    def paging(request: Request) -> tuple[int, int]:
        return int_param(request, "page", 1, 1), int_param(request, "perPage", DEFAULT_PER_PAGE, 1)

    routes: list[Route] = []
    for prefix in ("/api", ""):
        project = prefix + "/projects/{project}"
        routes += [
            Route(prefix + "/projects", endpoint(lambda r, b: state.projects_view(*paging(r))), methods=["GET"]),
            Route(project + "/runs", endpoint(lambda r, b: state.runs_view(p(r, "project"), *paging(r))), methods=["GET"]),
            Route(project + "/runs/{run}", endpoint(lambda r, b: state.run_view(p(r, "project"), p(r, "run"))), methods=["GET"]),
            Route(
                project + "/runs/{run}/cancel",
                endpoint(lambda r, b: state.cancel_run(p(r, "project"), p(r, "run"), b)),
                methods=["POST"],
            ),
            Route(project + "/releases", endpoint(lambda r, b: state.releases_view(p(r, "project"), *paging(r))), methods=["GET"]),
            Route(project + "/releases/deploy", endpoint(lambda r, b: state.deploy(p(r, "project"), b), status=201), methods=["POST"]),
        ]
    return routes
