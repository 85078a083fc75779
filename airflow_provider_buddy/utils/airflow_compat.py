"""The Airflow APIs this provider uses that differ between the Airflow versions it supports (3.1 to 3.3), in one
place. Everything here is public API: the common.compat provider resolves each name to where the running Airflow
keeps it.
"""

from __future__ import annotations

# conf: the Task SDK's configuration on Airflow 3.2+ (airflow.sdk.conf), airflow.configuration.conf on 3.1.
# AirflowFailException (a task failing with it is not retried): airflow.sdk.exceptions on 3.2+, airflow.exceptions on
# 3.1 (whose task runner catches that one).
from airflow.providers.common.compat.sdk import AirflowFailException, conf

__all__ = ["AirflowFailException", "conf"]
