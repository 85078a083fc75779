"""
A local Buddy.Works and GoRules BRMS API emulator for tests, demos and offline DAG runs.

Importing this package is light: the HTTP server (uvicorn, Starlette) is only imported by
:meth:`BuddyEmulator.start`.

- :class:`BuddyEmulator` -- the emulator (``with BuddyEmulator() as emu: ... emu.url``)
- :class:`Fault` -- a fault to inject (status, drop, delay, malformed; before or after processing)
- :class:`Scenario`, :func:`load_scenario` -- pipelines, BRMS projects and how their runs play out (format:
  see :mod:`airflow_provider_buddy.testing.scenario`)
- ``python -m airflow_provider_buddy.testing.emulator --port 8765 --scenario FILE`` -- run it standalone
  (steered over HTTP: see :mod:`airflow_provider_buddy.testing.control`)
- :mod:`airflow_provider_buddy.testing.pytest_plugin` -- the ``buddy_emulator`` fixture

Layout: the shared pieces (``server``, ``scenario``, ``control``, ``gateway``, ``faults``, ``recording``,
``clock``, ``_core``, ``_routing``, ``_specs``) and one package per service (``buddy``, ``gorules``), each with
its specs, runs, state, routes, control routes and Python API mixin. The services never import each other;
only ``server`` (the app, the control app, the mixins) and ``scenario`` (the specs) compose them.
"""

from __future__ import annotations

from pathlib import Path

from airflow_provider_buddy.testing._core import ApiError
from airflow_provider_buddy.testing.buddy.specs import ActionSpec, PipelineSpec, ProjectSpec, VariableSpec
from airflow_provider_buddy.testing.faults import Fault
from airflow_provider_buddy.testing.recording import RecordedRequest
from airflow_provider_buddy.testing.scenario import Scenario, ScenarioError, load_scenario
from airflow_provider_buddy.testing.server import BuddyEmulator

DEMO_SCENARIO = Path(__file__).parent / "scenarios" / "demo.json"
"""The example scenario shipped with the package: a release flow in Buddy project "web", and GoRules project
"pricing" with fixed ids (see :mod:`airflow_provider_buddy.testing.scenario`)."""

__all__ = [
    "DEMO_SCENARIO",
    "ActionSpec",
    "ApiError",
    "BuddyEmulator",
    "Fault",
    "PipelineSpec",
    "ProjectSpec",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "VariableSpec",
    "load_scenario",
]
