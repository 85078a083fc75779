"""A sensor whose wait passed its ``timeout`` fails the way Airflow's own sensors do, in poke and deferrable mode alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_buddy.utils.waiting import EventStatus


def sensor_timeout(message: str) -> Exception:
    """
    Airflow's ``AirflowSensorTimeout``: the task fails without being retried (with ``soft_fail=True`` it is skipped),
    as a poking sensor's timeout already does through ``BaseSensorOperator``.
    """
    # airflow.sdk.exceptions on Airflow 3.2+, airflow.exceptions on 3.1: the same object through common.compat
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    return AirflowSensorTimeout(message)


def raise_if_timed_out(event: Any, timeout: float, wait_error: Callable[[Any], Exception]) -> None:
    """
    A deferred sensor's wait ended with the trigger's ``timeout`` event (the sensor's ``timeout`` passed): raise
    :func:`sensor_timeout`, its cause the service's own timeout error (which names the run and its link).

    :param event: the trigger's event (anything else is left alone).
    :param timeout: the sensor's ``timeout`` (seconds).
    :param wait_error: the service's error for a wait that ended badly.
    """
    if not isinstance(event, dict) or event.get("status") != EventStatus.TIMEOUT.value:
        return
    error = wait_error(event)
    raise sensor_timeout(f"Sensor has timed out: its timeout of {timeout:g} seconds passed. {error}") from error
