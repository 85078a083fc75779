"""Buddy's control endpoints under ``/__emulator__/`` (listed in :mod:`airflow_provider_buddy.testing.control`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_buddy.testing._specs import ScenarioError
from airflow_provider_buddy.testing.buddy.options import parse_variables
from airflow_provider_buddy.testing.buddy.specs import PipelineSpec, pipeline_spec
from airflow_provider_buddy.testing.buddy.state import CHOICES, BuddyState, configure_state
from airflow_provider_buddy.testing.control import ControlPart, ControlRoute

if TYPE_CHECKING:
    from starlette.requests import Request


def pipeline_from_kwargs(data: Mapping[str, Any]) -> tuple[str, PipelineSpec]:
    """Split ``add_pipeline`` keyword arguments into the project name and a PipelineSpec."""
    fields = dict(data)
    project = fields.pop("project", None)
    if not isinstance(project, str) or not project:
        raise ScenarioError('a pipeline needs a "project" name')
    if "pipeline_id" in fields:
        fields["id"] = fields.pop("pipeline_id")
    return project, pipeline_spec(fields)


def buddy_control(state: BuddyState) -> ControlPart:
    """
    Buddy's part of the control app.

    :param state: the emulated workspace.
    """

    def add_pipeline(_: Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        project, spec = pipeline_from_kwargs(body)
        state.add_pipeline(project, spec)
        return state.pipeline_view(state.workspace, project, spec.id)

    def executions(request: Request, _: Any) -> Any:
        return state.all_executions(request.path_params["project"], int(request.path_params["pipeline"]))

    def start(request: Request, body: Any) -> Any:
        return state.start_in_buddy(request.path_params["project"], request.path_params["pipeline"], body)

    def approve(request: Request, body: Any) -> Any:
        params = request.path_params
        raw = (body or {}).get("variables")
        variables = parse_variables(raw) if raw is not None else None
        return state.approve_in_buddy(params["project"], int(params["pipeline"]), int(params["execution"]), variables)

    def info() -> dict[str, Any]:
        return {
            "workspace": state.workspace,
            "api_disabled": state.api_disabled,
            "scopes": sorted(state.scopes),
            **{name: getattr(state, name) for name in CHOICES},
        }

    def configure(body: Mapping[str, Any]) -> None:
        configure_state(state, {name: body[name] for name in CHOICES if name in body})
        if "api_disabled" in body:
            state.api_disabled = bool(body["api_disabled"])
        if "scopes" in body:
            state.scopes = {str(s) for s in body["scopes"]}

    routes = [
        ControlRoute("/pipelines", "POST", add_pipeline),
        ControlRoute("/executions/{project}/{pipeline:int}", "GET", executions),
        ControlRoute("/start/{project}/{pipeline:int}", "POST", start),
        ControlRoute("/approve/{project}/{pipeline:int}/{execution:int}", "POST", approve),
    ]
    return ControlPart(routes=routes, info=info, configure=configure)
