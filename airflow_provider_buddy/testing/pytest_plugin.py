"""
Pytest fixtures for the Buddy.Works emulator.

Installing the provider registers this plugin with pytest (entry point ``pytest11``), so the fixtures
below are there in any test; the emulator's server code loads only when a test asks for one. (Listing it
in ``pytest_plugins`` as well does no harm.)

- ``buddy_emulator`` (function scope): a started :class:`BuddyEmulator` with ``speed=20.0``; keyword
  arguments from a ``@pytest.mark.buddy_emulator(...)`` marker override the defaults, e.g.
  ``@pytest.mark.buddy_emulator(base_path="/api", speed=0)``.
- ``buddy_emulator_session`` (session scope): one shared emulator (``speed=20.0``); its faults and
  recorded requests are cleared before each test that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_buddy.testing.server import BuddyEmulator

DEFAULTS: dict[str, Any] = {"speed": 20.0}


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``buddy_emulator`` marker."""
    config.addinivalue_line("markers", "buddy_emulator(**kwargs): arguments for the buddy_emulator fixture")


@pytest.fixture(name="buddy_emulator")
def buddy_emulator_fixture(request: pytest.FixtureRequest) -> Iterator[BuddyEmulator]:
    """A started emulator for one test."""
    marker = request.node.get_closest_marker("buddy_emulator")
    kwargs = {**DEFAULTS, **(marker.kwargs if marker is not None else {})}
    from airflow_provider_buddy.testing.server import BuddyEmulator

    with BuddyEmulator(**kwargs) as emulator:
        yield emulator


@pytest.fixture(name="_buddy_emulator_shared", scope="session")
def buddy_emulator_shared_fixture() -> Iterator[BuddyEmulator]:
    """The one emulator behind ``buddy_emulator_session``."""
    from airflow_provider_buddy.testing.server import BuddyEmulator

    with BuddyEmulator(**DEFAULTS) as emulator:
        yield emulator


@pytest.fixture(name="buddy_emulator_session")
def buddy_emulator_session_fixture(_buddy_emulator_shared: BuddyEmulator) -> BuddyEmulator:
    """The session's shared emulator, with faults and recorded requests cleared."""
    _buddy_emulator_shared.clear_faults()
    _buddy_emulator_shared.clear_requests()
    return _buddy_emulator_shared
