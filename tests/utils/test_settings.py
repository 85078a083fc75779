"""The provider's [buddy] settings: declared to Airflow (``airflow config list``), read from Airflow's configuration
and its AIRFLOW__BUDDY__* variables, wrong values named, the old bare variables still read with a deprecation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_buddy.utils import settings

AIRFLOW = Path(sys.executable).with_name("airflow")


def test_airflow_config_list_shows_the_section() -> None:
    env = {**os.environ, "AIRFLOW__BUDDY__RESUME_HOLD_SECONDS": "42"}
    shown = subprocess.run(
        [str(AIRFLOW), "config", "list", "--section", "buddy", "--show-values", "--include-descriptions", "--include-sources"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    ).stdout
    for setting in settings.ALL:
        assert f"{setting.key} = " in shown
    assert "resume_hold_seconds = 42" in shown and "Airflow 3.1-3.3 can fail a task resumed sooner" in shown


def test_values_come_from_airflows_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__BUDDY__RESUME_HOLD_SECONDS", raising=False)
    assert settings.read_float(settings.RESUME_HOLD) == 20.0 and settings.read_bool(settings.END_IN_TRIGGERER) is True
    monkeypatch.setenv("AIRFLOW__BUDDY__RESUME_HOLD_SECONDS", "7.5")
    monkeypatch.setenv("AIRFLOW__BUDDY__END_IN_TRIGGERER", "false")
    monkeypatch.setenv("AIRFLOW__BUDDY__TRIGGERER_MAX_IN_FLIGHT", "32")
    assert settings.read_float(settings.RESUME_HOLD) == 7.5 and settings.read_bool(settings.END_IN_TRIGGERER) is False
    assert settings.read_int(settings.TRIGGERER_MAX_IN_FLIGHT) == 32


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("RESUME_HOLD_SECONDS", "soon", "[buddy] resume_hold_seconds must be a number from 0 to 3600, got 'soon'"),
        ("RESUME_HOLD_SECONDS", "-1", "[buddy] resume_hold_seconds must be a number from 0 to 3600"),
        ("TRIGGERER_MAX_IN_FLIGHT", "0", "[buddy] triggerer_max_in_flight must be a whole number from 1 to 1000"),
        ("TRIGGERER_MAX_IN_FLIGHT", "2.5", "[buddy] triggerer_max_in_flight must be a whole number"),
        ("END_IN_TRIGGERER", "maybe", "[buddy] end_in_triggerer must be True or False, got 'maybe'"),
    ],
)
def test_a_wrong_value_is_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str) -> None:
    monkeypatch.setenv(f"AIRFLOW__BUDDY__{env}", value)
    setting = next(s for s in settings.ALL if s.env == f"AIRFLOW__BUDDY__{env}")
    reader = {"integer": settings.read_int, "float": settings.read_float, "boolean": settings.read_bool}[setting.kind]
    with pytest.raises(ValueError) as raised:
        reader(setting)
    assert message in str(raised.value)


def test_the_old_bare_variable_still_works_with_a_deprecation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__BUDDY__TRIGGERER_MAX_IN_FLIGHT", raising=False)
    monkeypatch.setenv("BUDDY_TRIGGERER_MAX_IN_FLIGHT", "12")
    with pytest.warns(DeprecationWarning, match=r"BUDDY_TRIGGERER_MAX_IN_FLIGHT is deprecated.*\[buddy\] triggerer_max_in_flight"):
        assert settings.read_int(settings.TRIGGERER_MAX_IN_FLIGHT) == 12
    monkeypatch.setenv("AIRFLOW__BUDDY__TRIGGERER_MAX_IN_FLIGHT", "30")  # the new setting wins
    assert settings.read_int(settings.TRIGGERER_MAX_IN_FLIGHT) == 30
