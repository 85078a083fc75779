"""
HTTP control endpoints under ``/__emulator__/`` (no auth), for an emulator running in another process.

- ``GET  /__emulator__/`` -- workspace, API URL and active faults
- ``GET  /__emulator__/requests`` -- the recorded API requests (JSON list)
- ``POST /__emulator__/reset-requests`` -- forget them
- ``POST /__emulator__/faults`` -- add a fault (the fields of :class:`Fault`); ``DELETE`` removes all
- ``POST /__emulator__/advance`` -- ``{"seconds": n}`` moves the emulated clock
- ``POST /__emulator__/speed`` -- ``{"speed": x}`` runs the clock at x from now on (0 pauses it)
- ``POST /__emulator__/pipelines`` -- add a pipeline (the keyword arguments of ``add_pipeline``)
- ``GET  /__emulator__/executions/{project}/{pipeline_id}`` -- its executions, newest first
- ``POST /__emulator__/start/{project}/{pipeline_id}`` -- start a run as from Buddy's UI (body: run body)
- ``POST /__emulator__/approve/{project}/{pipeline_id}/{execution_id}`` -- approve as a person in Buddy's UI
  (optional body ``{"variables": [...]}``)
- ``POST /__emulator__/config`` -- ``{"api_disabled": bool, "scopes": [...]}``
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airflow_provider_buddy.testing.app import error_response, json_body
from airflow_provider_buddy.testing.faults import Fault, FaultBook
from airflow_provider_buddy.testing.recording import RequestLog
from airflow_provider_buddy.testing.runs import BUDDY_USER_ID, ApiError, parse_variables
from airflow_provider_buddy.testing.scenario import PipelineSpec, ScenarioError, pipeline_spec
from airflow_provider_buddy.testing.state import EmulatorState

CONTROL_PREFIX = "/__emulator__"

Action = Callable[[Request, Any], Any]


def pipeline_from_kwargs(data: dict[str, Any]) -> tuple[str, PipelineSpec]:
    """Split ``add_pipeline`` keyword arguments into the project name and a PipelineSpec."""
    fields = dict(data)
    project = fields.pop("project", None)
    if not isinstance(project, str) or not project:
        raise ScenarioError('a pipeline needs a "project" name')
    if "pipeline_id" in fields:
        fields["id"] = fields.pop("pipeline_id")
    return project, pipeline_spec(fields)


def build_control(state: EmulatorState, faults: FaultBook, log: RequestLog) -> Starlette:
    """
    Build the control app (paths start with ``/__emulator__``).

    :param state: the emulated workspace.
    :param faults: the active faults.
    :param log: the recorded requests.
    """

    def endpoint(action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                body = await json_body(request) if request.method in ("POST", "DELETE") else None
                return JSONResponse(action(request, body))
            except ApiError as exc:
                return error_response(exc.status, exc.message)
            except (ValueError, TypeError) as exc:
                return error_response(400, str(exc))

        return handle

    def info(_: Request, __: Any) -> Any:
        return {
            "workspace": state.workspace,
            "api_url": state.api_base,
            "faults": [f.to_dict() for f in faults.active()],
            "api_disabled": state.api_disabled,
            "scopes": sorted(state.scopes),
        }

    def add_fault(_: Request, body: Any) -> Any:
        fault = Fault.from_dict(body or {})
        faults.add(fault)
        return fault.to_dict()

    def clear_faults(_: Request, __: Any) -> Any:
        faults.clear()
        return {"faults": []}

    def reset_requests(_: Request, __: Any) -> Any:
        count = len(log.all())
        log.clear()
        return {"cleared": count}

    def advance(_: Request, body: Any) -> Any:
        seconds = (body or {}).get("seconds")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError('"seconds" must be a non-negative number')
        state.advance(float(seconds))
        return {"advanced": seconds}

    def set_speed(_: Request, body: Any) -> Any:
        speed = (body or {}).get("speed")
        if not isinstance(speed, (int, float)) or isinstance(speed, bool) or speed < 0:
            raise ValueError('"speed" must be a non-negative number')
        with state.lock:
            state.clock.speed = float(speed)
        return {"speed": speed}

    def add_pipeline(_: Request, body: Any) -> Any:
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        project, spec = pipeline_from_kwargs(body)
        state.add_pipeline(project, spec)
        return state.pipeline_view(state.workspace, project, spec.id)

    def executions(request: Request, _: Any) -> Any:
        return state.all_executions(request.path_params["project"], int(request.path_params["pipeline"]))

    def start(request: Request, body: Any) -> Any:
        params = request.path_params
        return state.run(state.workspace, params["project"], params["pipeline"], body, triggered_on="CLICK", creator_id=BUDDY_USER_ID)

    def approve(request: Request, body: Any) -> Any:
        params = request.path_params
        raw = (body or {}).get("variables")
        variables = parse_variables(raw) if raw is not None else None
        return state.approve_in_buddy(params["project"], int(params["pipeline"]), int(params["execution"]), variables)

    def config(_: Request, body: Any) -> Any:
        body = body or {}
        if "api_disabled" in body:
            state.api_disabled = bool(body["api_disabled"])
        if "scopes" in body:
            state.scopes = {str(s) for s in body["scopes"]}
        return info(_, None)

    prefix = CONTROL_PREFIX
    routes = [
        Route(prefix + "/", endpoint(info), methods=["GET"]),
        Route(prefix + "/requests", endpoint(lambda r, b: [x.to_dict() for x in log.all()]), methods=["GET"]),
        Route(prefix + "/reset-requests", endpoint(reset_requests), methods=["POST"]),
        Route(prefix + "/faults", endpoint(add_fault), methods=["POST"]),
        Route(prefix + "/faults", endpoint(clear_faults), methods=["DELETE"]),
        Route(prefix + "/advance", endpoint(advance), methods=["POST"]),
        Route(prefix + "/speed", endpoint(set_speed), methods=["POST"]),
        Route(prefix + "/pipelines", endpoint(add_pipeline), methods=["POST"]),
        Route(prefix + "/executions/{project}/{pipeline:int}", endpoint(executions), methods=["GET"]),
        Route(prefix + "/start/{project}/{pipeline:int}", endpoint(start), methods=["POST"]),
        Route(prefix + "/approve/{project}/{pipeline:int}/{execution:int}", endpoint(approve), methods=["POST"]),
        Route(prefix + "/config", endpoint(config), methods=["POST"]),
    ]
    return Starlette(routes=routes)
