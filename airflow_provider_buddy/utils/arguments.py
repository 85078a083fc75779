"""Argument checks shared by the operators, sensors and hooks of both services: each error names the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BUDDY_DEFAULT_CONN_ID = "buddy_default"
"""The connection Buddy hooks, operators and sensors use unless told otherwise."""


def is_template(value: Any) -> bool:
    """True when ``value`` is a Jinja template still to be rendered (checked after rendering instead)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def positive_int(value: Any, parameter: str) -> int:
    """``value`` as a positive whole number (an int or a digit string), or a ValueError naming ``parameter``."""
    if isinstance(value, bool):
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}")
    return number


def check_positive_int(value: Any, parameter: str) -> None:
    """Check now unless ``value`` is a template (then it is checked after rendering)."""
    if not is_template(value):
        positive_int(value, parameter)


def non_empty(value: Any, parameter: str, *, error: Callable[[str], Exception] = ValueError) -> str:
    """``value`` as a non-blank string, or ``error`` (a ValueError unless told) naming ``parameter``."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{parameter} must be a non-empty string, got {value!r}")
    return value.strip()


def pipeline_ref(value: Any, parameter: str = "pipeline_id") -> int | str:
    """A pipeline id (positive int) or identifier/name (non-empty string)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{parameter} must be an int id or a pipeline identifier/name, got {value!r}")
    if isinstance(value, int):
        return positive_int(value, parameter)
    text = non_empty(value, parameter)
    return int(text) if text.isdigit() else text


def check_bool(value: Any, parameter: str, *, optional: bool = False) -> None:
    """A ValueError naming ``parameter`` unless ``value`` is True or False (or None when ``optional``): a
    string such as ``"false"`` would otherwise read as true."""
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{parameter} must be True or False, got {value!r}")


def positive_seconds(value: Any, parameter: str) -> float:
    """``value`` as a positive number of seconds, or a ValueError naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{parameter} must be a positive number of seconds, got {value!r}")
    return float(value)


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's configuration."""
    from airflow_provider_buddy.utils.airflow_compat import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
