"""Routes of the emulated GoRules BRMS API, served by the same server as the Buddy API.

Every route exists twice: under ``/api/projects/...`` (the emulator's URL given as the BRMS URL, the
client adding ``/api``) and under ``/projects/...`` (an emulator whose base path already is ``/api``).
Errors are answered as ``{"statusCode", "message"}``; the token is the emulator's.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from airflow_provider_buddy.testing._routing import endpoint, paging, require_bearer
from airflow_provider_buddy.testing._routing import path_param as p
from airflow_provider_buddy.testing.gorules.state import GoRulesState

DEFAULT_PER_PAGE = 10


def gorules_error(status: int, message: str) -> JSONResponse:
    """An error answer in the BRMS's (NestJS) style."""
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


def gorules_routes(state: GoRulesState) -> list[Route]:
    """
    The GoRules routes, to add to the emulator's API app.

    :param state: the emulated BRMS.
    """

    def guard(request: Request) -> None:
        require_bearer(request, state.token, "Unauthorized")

    def pages(request: Request) -> tuple[int, int]:
        return paging(request, "perPage", DEFAULT_PER_PAGE)

    handler = partial(endpoint, guard=guard, error=gorules_error)
    routes: list[Route] = []
    for prefix in ("/api", ""):
        project = prefix + "/projects/{project}"
        routes += [
            Route(prefix + "/projects", handler(lambda r, b: state.projects_view(*pages(r))), methods=["GET"]),
            Route(project + "/runs", handler(lambda r, b: state.runs_view(p(r, "project"), *pages(r))), methods=["GET"]),
            Route(project + "/runs/{run}", handler(lambda r, b: state.run_view(p(r, "project"), p(r, "run"))), methods=["GET"]),
            Route(
                project + "/runs/{run}/cancel",
                handler(lambda r, b: state.cancel_run(p(r, "project"), p(r, "run"), b)),
                methods=["POST"],
            ),
            Route(project + "/releases", handler(lambda r, b: state.releases_view(p(r, "project"), *pages(r))), methods=["GET"]),
            Route(project + "/releases/deploy", handler(lambda r, b: state.deploy(p(r, "project"), b), status=201), methods=["POST"]),
            Route(
                project + "/releases/{release}",
                handler(lambda r, b: state.release_view(p(r, "project"), p(r, "release"))),
                methods=["GET"],
            ),
            Route(project + "/environments", handler(lambda r, b: state.environments_view(p(r, "project"))), methods=["GET"]),
        ]
    return routes
