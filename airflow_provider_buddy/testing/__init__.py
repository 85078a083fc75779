"""
A local Buddy.Works API emulator for tests, demos and offline DAG runs.

Importing this package is light: the HTTP server (uvicorn, Starlette) is only imported by
:meth:`BuddyEmulator.start`.

- :class:`BuddyEmulator` -- the emulator (``with BuddyEmulator() as emu: ... emu.url``)
- :class:`Fault` -- a fault to inject (status, drop, delay, malformed; before or after processing)
- :class:`Scenario`, :func:`load_scenario` -- pipelines and how their runs play out (format: see
  :mod:`airflow_provider_buddy.testing.scenario`)
- ``python -m airflow_provider_buddy.testing.emulator --port 8765 --scenario FILE`` -- run it standalone
- :mod:`airflow_provider_buddy.testing.pytest_plugin` -- the ``buddy_emulator`` fixture
"""

from __future__ import annotations

from pathlib import Path

from airflow_provider_buddy.testing.faults import Fault
from airflow_provider_buddy.testing.recording import RecordedRequest
from airflow_provider_buddy.testing.runs import ApiError
from airflow_provider_buddy.testing.scenario import (
    ActionSpec,
    PipelineSpec,
    ProjectSpec,
    Scenario,
    ScenarioError,
    VariableSpec,
    load_scenario,
)
from airflow_provider_buddy.testing.server import BuddyEmulator

DEMO_SCENARIO = Path(__file__).parent / "scenarios" / "demo.json"
"""The example scenario shipped with the package (a release flow in project "web")."""

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
