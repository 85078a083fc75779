"""Shared fixtures: a real emulator on 127.0.0.1 and hooks pointed at it."""

from __future__ import annotations

import os
import tempfile

# Airflow reads its configuration when first imported: point it at a throwaway home first.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="buddy-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
# dag.test() runs a trigger in-process right after the deferral, where Airflow's defer race cannot happen: no hold
# (the hold itself is tested on the trigger, and in the real-deployment suite with its default)
os.environ.setdefault("AIRFLOW__BUDDY__RESUME_HOLD_SECONDS", "0")

import logging
from collections.abc import Iterator

import pytest

from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.testing import BuddyEmulator

TOKEN = "tok-SECRET-4f1c9a7e"
WORKSPACE = "acme"

BUILD_ACTIONS = [
    {"id": 10, "name": "Compile", "type": "BUILD", "duration": 1, "log": ["compiling", "done"]},
    {"id": 11, "name": "Test", "type": "BUILD", "duration": 1, "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}]},
]


def fast_settings(url: str, token: str = TOKEN, **overrides: object) -> ClientSettings:
    """Settings with tiny backoffs so retry tests run in milliseconds."""
    values: dict[str, object] = {
        "base_url": url,
        "token": token,
        "account": WORKSPACE,
        "timeout": 5.0,
        "max_retries": 3,
        "retry_min_wait": 0.01,
        "retry_max_wait": 0.05,
        "retry_total_timeout": 20.0,
    }
    values.update(overrides)
    return ClientSettings(**values)  # type: ignore[arg-type]


class LogCapture:
    """Everything logged during a test: stdlib records and what Airflow's structlog printed."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        self._caplog = caplog
        self._capsys = capsys
        self._seen = ""

    @property
    def text(self) -> str:
        captured = self._capsys.readouterr()
        self._seen += captured.out + captured.err
        return self._caplog.text + self._seen


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> LogCapture:
    caplog.set_level(logging.DEBUG)
    return LogCapture(caplog, capsys)


@pytest.fixture
def emulator() -> Iterator[BuddyEmulator]:
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0) as emu:
        emu.add_pipeline(project="web", pipeline_id=1, identifier="build", name="Build", actions=BUILD_ACTIONS)
        yield emu


@pytest.fixture
def hook(emulator: BuddyEmulator) -> Iterator[BuddyHook]:
    hook = BuddyHook(settings=fast_settings(emulator.url))
    yield hook
    hook.close()


FAST_EXTRA = {"timeout": 5, "max_retries": 3, "retry_min_wait": 0.01, "retry_max_wait": 0.05, "retry_total_timeout": 20}


def connection_json(url: str, token: str = TOKEN, **extra: object) -> str:
    """An ``AIRFLOW_CONN_*`` value for the emulator."""
    import json

    return json.dumps({"conn_type": "buddy", "host": url, "login": WORKSPACE, "password": token, "extra": {**FAST_EXTRA, **extra}})


@pytest.fixture
def buddy_conn(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``buddy_default`` pointed at the emulator, through the environment as a user would set it."""
    monkeypatch.setenv("AIRFLOW_CONN_BUDDY_DEFAULT", connection_json(emulator.url))
    return "buddy_default"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A fresh Airflow metadata database (sqlite in the throwaway AIRFLOW_HOME), once per session."""
    from airflow.utils import db

    from tests.airflow_support import airflow_has_awaiting_input, serve_hitl_reads_in_dag_test

    db.resetdb()
    if not airflow_has_awaiting_input():
        # Airflow 3.1: every gate waits in its trigger, which dag.test() runs under the task supervisor; let that
        # supervisor answer the trigger's HITL reads as the triggerer does (3.3 needs it only for a retried gate)
        serve_hitl_reads_in_dag_test()


@pytest.fixture(scope="session")
def airflow_api(airflow_db: None) -> object:
    """Airflow's api-server app (created once: it takes seconds), for answering HITL requests over its REST API."""
    from tests.airflow_support import api_client

    return api_client()
