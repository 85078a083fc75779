"""The Airflow APIs this provider uses that differ between the Airflow versions it supports (3.1 to 3.3), in one
place. Everything here is public API: the common.compat provider resolves each name to where the running Airflow
keeps it.
"""

from __future__ import annotations

# Airflow 3.2+: the Task SDK's configuration (airflow.sdk.conf); 3.1: airflow.configuration.conf (no SDK one yet)
from airflow.providers.common.compat.sdk import conf

__all__ = ["conf"]
