"""Fixtures for the emulator's own tests: the emulator plugin's fixtures plus a plain httpx client."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_buddy.testing import BuddyEmulator

# buddy_emulator and buddy_emulator_session come from the plugin the package registers with pytest (pytest11)

# one SSL context for every client: httpx builds a new one (~40 ms) for each client otherwise
SSL_CONTEXT = ssl.create_default_context()


def client(emulator: BuddyEmulator, token: str | None = None, timeout: float = 5.0) -> httpx.Client:
    """A plain httpx client for the emulator; ``token=""`` sends no Authorization header."""
    token = emulator.token if token is None else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=emulator.url, headers=headers, verify=SSL_CONTEXT, timeout=timeout)


ClientFactory = Callable[..., httpx.Client]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """``make_client(emulator, token=None, timeout=5.0)``: more httpx clients, closed after the test."""
    made: list[httpx.Client] = []

    def make(emulator: BuddyEmulator, token: str | None = None, timeout: float = 5.0) -> httpx.Client:
        made.append(client(emulator, token, timeout))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def emu(buddy_emulator: BuddyEmulator) -> BuddyEmulator:
    """The emulator with a typical pipeline: build, approval, pass-arguments, deploy."""
    buddy_emulator.add_pipeline(
        project="web",
        pipeline_id=1,
        identifier="build",
        name="Build",
        actions=[
            {
                "id": 10,
                "name": "Compile",
                "type": "BUILD",
                "duration": 2,
                "log": ["line 1", "line 2"],
                "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}],
            },
            {"id": 11, "name": "Approve prod", "type": "WAIT_FOR_APPLY"},
            {
                "id": 12,
                "name": "Release notes",
                "type": "WAIT_FOR_VARIABLES",
                "variables": [{"key": "NOTES", "value": "default"}],
            },
            {"id": 13, "name": "Deploy", "type": "BUILD", "duration": 1},
        ],
    )
    return buddy_emulator


@pytest.fixture
def api(buddy_emulator: BuddyEmulator) -> Iterator[httpx.Client]:
    """A plain httpx client authenticated against the emulator."""
    with client(buddy_emulator, timeout=5.0) as api_client:
        yield api_client
