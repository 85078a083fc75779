"""
HTTP control endpoints under ``/__emulator__/`` (no auth), for an emulator running in another process.

Errors are answered ``{"errors": [{"message": ...}]}``: 400 for a bad body (the message names the bad key),
404 for an unknown project, pipeline or run.

Shared:

- ``GET  /__emulator__/`` -- API URL, active faults, and each service's settings (workspace, ``api_disabled``,
  ``scopes``; ``gorules_projects``)
- ``GET  /__emulator__/requests`` -- the recorded API requests (JSON list)
- ``POST /__emulator__/reset-requests`` -- forget them
- ``POST /__emulator__/faults`` -- add a fault (the fields of :class:`Fault`); ``DELETE`` removes all
- ``POST /__emulator__/advance`` -- ``{"seconds": n}`` moves the emulated clock
- ``POST /__emulator__/speed`` -- ``{"speed": x}`` runs the clock at x from now on (0 pauses it)
- ``POST /__emulator__/config`` -- ``{"api_disabled": bool, "scopes": [...]}`` and what Buddy's docs leave open:
  ``identifiers_missing`` (``"404"``/``"empty"``), ``identifiers_see_hidden`` (bool), ``delayed_status``
  (``"ENQUEUED"``/``"INITIAL"``), ``settable_variables_operation`` (``"SET_VARIABLES"``/``"APPLY_VARIABLES"``)
  (Buddy's settings; see ``configure_buddy``)

Buddy.Works (:mod:`airflow_provider_buddy.testing.buddy.control`):

- ``POST /__emulator__/pipelines`` -- add a pipeline (the keyword arguments of ``add_pipeline``)
- ``GET  /__emulator__/executions/{project}/{pipeline_id}`` -- its executions, newest first
- ``POST /__emulator__/start/{project}/{pipeline_id}`` -- start a run as from Buddy's UI (body: run body)
- ``POST /__emulator__/approve/{project}/{pipeline_id}/{execution_id}`` -- approve as a person in Buddy's UI
  (optional body ``{"variables": [...]}``)

GoRules BRMS (:mod:`airflow_provider_buddy.testing.gorules.control`; ``{env}`` is an environment's key or id):

- ``GET  /__emulator__/gorules/projects`` -- every project: ids of its environments and releases, its settings
- ``POST /__emulator__/gorules/projects`` -- add (or replace) a project: a scenario's project entry
  (``{"name", "id", "environments", "releases", "deploy_answer", "comment_visible"}``; ``project_id`` also
  names the id, as in ``add_gorules_project``)
- ``POST /__emulator__/gorules/projects/{project}/releases`` -- add a release ``{"name", "version", "id",
  "description"}`` (``release_id`` also names the id)
- ``POST /__emulator__/gorules/projects/{project}/configure`` -- ``{"deploy_answer", "comment_visible"}``
- ``GET  /__emulator__/gorules/projects/{project}/runs`` -- its runs as the API shows them, newest first
- ``GET  /__emulator__/gorules/projects/{project}/runs/{run}`` -- one run
- ``POST /__emulator__/gorules/projects/{project}/runs`` -- start a run as from the BRMS UI:
  ``{"release_id", "environments": [env, ...], "comment"}``
- ``POST /__emulator__/gorules/projects/{project}/runs/{run}/review`` -- a reviewer answers the pending review:
  ``{"environment": env, "approve": true, "comment": "..."}`` (``approve`` false rejects)
- ``GET  /__emulator__/gorules/projects/{project}/deployed`` -- what each environment runs now: ``{key: release_id}``
- ``POST /__emulator__/gorules/projects/{project}/change-requests/{request}/review`` -- a reviewer answers a pending
  change request: ``{"approve": true}`` (the deployment then runs) or ``{"approve": false}``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from airflow_provider_buddy.testing._core import Core
from airflow_provider_buddy.testing._routing import Action, endpoint
from airflow_provider_buddy.testing.faults import Fault, FaultBook
from airflow_provider_buddy.testing.recording import RequestLog

CONTROL_PREFIX = "/__emulator__"


@dataclass(frozen=True)
class ControlRoute:
    """
    A control endpoint a service adds.

    :param path: its path under ``/__emulator__`` (Starlette syntax, e.g. ``/start/{project}/{pipeline:int}``).
    :param method: its HTTP method.
    :param action: what it does (:data:`~airflow_provider_buddy.testing._routing.Action`).
    """

    path: str
    method: str
    action: Action


def _nothing(_: Mapping[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class ControlPart:
    """
    What one service adds to the control app.

    :param routes: its endpoints.
    :param info: its part of ``GET /__emulator__/``.
    :param configure: applies its keys of a ``POST /__emulator__/config`` body (others are ignored).
    """

    routes: Sequence[ControlRoute] = ()
    info: Callable[[], Mapping[str, Any]] = dict
    configure: Callable[[Mapping[str, Any]], None] = _nothing


@dataclass(frozen=True)
class _Shared:
    core: Core
    faults: FaultBook
    log: RequestLog
    parts: Sequence[ControlPart] = field(default_factory=tuple)

    def info(self, *_: Any) -> Any:
        answer: dict[str, Any] = {"api_url": self.core.api_base, "faults": [f.to_dict() for f in self.faults.active()]}
        for part in self.parts:
            answer.update(part.info())
        return answer

    def add_fault(self, _: Request, body: Any) -> Any:
        fault = Fault.from_dict(body or {})
        self.faults.add(fault)
        return fault.to_dict()

    def clear_faults(self, *_: Any) -> Any:
        self.faults.clear()
        return {"faults": []}

    def requests(self, *_: Any) -> Any:
        return [x.to_dict() for x in self.log.all()]

    def reset_requests(self, *_: Any) -> Any:
        count = len(self.log.all())
        self.log.clear()
        return {"cleared": count}

    def advance(self, _: Request, body: Any) -> Any:
        seconds = _non_negative(body, "seconds")
        self.core.advance(float(seconds))
        return {"advanced": seconds}

    def set_speed(self, _: Request, body: Any) -> Any:
        speed = _non_negative(body, "speed")
        self.core.set_speed(float(speed))
        return {"speed": speed}

    def config(self, _: Request, body: Any) -> Any:
        for part in self.parts:
            part.configure(body or {})
        return self.info()


def _non_negative(body: Any, key: str) -> Any:
    value = (body or {}).get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f'"{key}" must be a non-negative number')
    return value


def build_control(core: Core, faults: FaultBook, log: RequestLog, parts: Sequence[ControlPart] = ()) -> Starlette:
    """
    Build the control app (paths start with ``/__emulator__``).

    :param core: the shared clock and API URL.
    :param faults: the active faults.
    :param log: the recorded requests.
    :param parts: what each service adds.
    """
    shared = _Shared(core, faults, log, tuple(parts))
    routes = [
        ControlRoute("/", "GET", shared.info),
        ControlRoute("/requests", "GET", shared.requests),
        ControlRoute("/reset-requests", "POST", shared.reset_requests),
        ControlRoute("/faults", "POST", shared.add_fault),
        ControlRoute("/faults", "DELETE", shared.clear_faults),
        ControlRoute("/advance", "POST", shared.advance),
        ControlRoute("/speed", "POST", shared.set_speed),
        ControlRoute("/config", "POST", shared.config),
    ]
    routes += [route for part in parts for route in part.routes]
    return Starlette(
        routes=[Route(CONTROL_PREFIX + r.path, endpoint(r.action, bad_input=(ValueError, TypeError)), methods=[r.method]) for r in routes]
    )
