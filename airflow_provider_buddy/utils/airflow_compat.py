"""The Airflow APIs this provider uses that differ between the Airflow versions it supports (3.1 to 3.3), in one
place. Everything here is public API (``airflow.sdk`` or the common.compat provider); where a version lacks it, the
fallback is named in a comment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import conf as conf
    from airflow.sdk.exceptions import AirflowFailException as AirflowFailException
else:
    try:
        from airflow.sdk import conf
    except ImportError:  # pragma: no cover - Airflow before airflow.sdk exported conf
        from airflow.configuration import conf
    try:  # a task failing with it is not retried
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover - Airflow 3.1's task runner reads the core one
        from airflow.exceptions import AirflowFailException

__all__ = ["AirflowFailException", "conf"]
