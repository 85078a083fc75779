"""GoRules' control endpoints under ``/__emulator__/gorules/`` (listed in :mod:`airflow_provider_buddy.testing.control`).

Bodies are validated like scenario entries: an unknown or invalid key answers 400 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from airflow_provider_buddy.testing._routing import path_param
from airflow_provider_buddy.testing._specs import ScenarioError, Spec, SpecT, validate
from airflow_provider_buddy.testing.control import ControlPart, ControlRoute
from airflow_provider_buddy.testing.gorules.specs import GoRulesProjectSpec, GoRulesSettings, ReleaseSpec
from airflow_provider_buddy.testing.gorules.state import GoRulesState

if TYPE_CHECKING:
    from starlette.requests import Request


class StartRun(Spec):
    """``POST .../runs``: a run started from the BRMS UI."""

    release_id: str = Field(min_length=1)
    environments: list[str] = Field(min_length=1)
    comment: str | None = None


class Review(Spec):
    """``POST .../runs/{run}/review``: a reviewer's answer."""

    environment: str = Field(min_length=1)
    approve: bool = True
    comment: str | None = None


class ChangeRequestReview(Spec):
    """``POST .../change-requests/{request}/review``: a reviewer's answer to a change request."""

    approve: bool = True


def _body(model: type[SpecT], body: Any, what: str, id_alias: str | None = None) -> SpecT:
    if not isinstance(body, Mapping):
        raise ScenarioError(f"invalid {what}: the body must be a JSON object")
    fields = dict(body)
    if id_alias is not None and id_alias in fields:
        if "id" in fields:
            raise ScenarioError(f'invalid {what}: give "id" or "{id_alias}", not both')
        fields["id"] = fields.pop(id_alias)
    return validate(model, fields, what)


def gorules_control(state: GoRulesState) -> ControlPart:
    """
    GoRules' part of the control app.

    :param state: the emulated BRMS.
    """

    def project(request: Request) -> str:
        return path_param(request, "project")

    def add_project(_: Request, body: Any) -> Any:
        created = state.add_project(_body(GoRulesProjectSpec, body, "GoRules project", "project_id"))
        return state.describe(created["id"])

    def add_release(request: Request, body: Any) -> Any:
        release_id = state.add_release(project(request), _body(ReleaseSpec, body, "release", "release_id"))
        return next(r for r in state.describe(project(request))["releases"] if r["id"] == release_id)

    def configure(request: Request, body: Any) -> Any:
        state.configure(project(request), _body(GoRulesSettings, body, "GoRules project settings"))
        return state.describe(project(request))

    def start(request: Request, body: Any) -> Any:
        wanted = _body(StartRun, body, "run")
        return state.start_run(project(request), wanted.release_id, wanted.environments, wanted.comment)

    def review(request: Request, body: Any) -> Any:
        answer = _body(Review, body, "review")
        return state.review(
            project(request), path_param(request, "run"), answer.environment, approve=answer.approve, comment=answer.comment
        )

    def review_request(request: Request, body: Any) -> Any:
        answer = _body(ChangeRequestReview, body or {}, "change request review")
        return state.review_change_request(project(request), path_param(request, "request"), approve=answer.approve)

    def info() -> dict[str, Any]:
        return {"gorules_projects": [p["id"] for p in state.describe_all()]}

    one = "/gorules/projects/{project}"
    routes = [
        ControlRoute("/gorules/projects", "GET", lambda r, b: state.describe_all()),
        ControlRoute("/gorules/projects", "POST", add_project),
        ControlRoute(one + "/releases", "POST", add_release),
        ControlRoute(one + "/configure", "POST", configure),
        ControlRoute(one + "/runs", "GET", lambda r, b: state.all_runs(project(r))),
        ControlRoute(one + "/runs", "POST", start),
        ControlRoute(one + "/runs/{run}", "GET", lambda r, b: state.run_view(project(r), path_param(r, "run"))),
        ControlRoute(one + "/runs/{run}/review", "POST", review),
        ControlRoute(one + "/deployed", "GET", lambda r, b: state.deployed(project(r))),
        ControlRoute(one + "/change-requests/{request}/review", "POST", review_request),
    ]
    return ControlPart(routes=routes, info=info)
