"""The emulator's pytest plugin, as a user's project meets it: registered by installing the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_TEST = """
import httpx
import pytest


@pytest.mark.buddy_emulator(speed=0, workspace="mine")
def test_fixture_from_the_installed_plugin(buddy_emulator):
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="build")
    answer = httpx.get(
        buddy_emulator.url + "/workspaces/mine/projects/web/pipelines/1",
        headers={"Authorization": f"Bearer {buddy_emulator.token}"},
    )
    assert answer.status_code == 200 and answer.json()["identifier"] == "build"
    assert buddy_emulator.speed == 0


def test_session_emulator_starts_clean(buddy_emulator_session):
    assert buddy_emulator_session.requests == [] and buddy_emulator_session.faults == []
"""


@pytest.mark.parametrize("listed_in_conftest", [False, True], ids=["entry-point-only", "also-in-pytest_plugins"])
def test_a_users_project_gets_the_fixtures(tmp_path: Path, listed_in_conftest: bool) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST)
    if listed_in_conftest:
        (tmp_path / "conftest.py").write_text('pytest_plugins = ["airflow_provider_buddy.testing.pytest_plugin"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--strict-markers", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout
