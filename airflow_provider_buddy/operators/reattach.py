"""Recognising the Buddy run a task instance started before (task retry, worker crash, lost answer).

Buddy has no idempotency key, so the run's ``comment`` carries a short marker derived from the task
instance's identity (DAG, run, task, map index); a later try lists recent executions and finds it.
"""

from __future__ import annotations

import hashlib
from typing import Any

MARKER_PREFIX = "[airflow:"
SEARCH_DEPTH = 100


def task_marker(context: Any) -> str:
    """The marker of the running task instance: the same for every try of it, different for any other."""
    ti = context["ti"]
    identity = f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{getattr(ti, 'map_index', -1)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}]"


def marked_comment(comment: str | None, marker: str, context: Any) -> str:
    """The run's comment with the marker appended (a default comment naming the task when none was given)."""
    ti = context["ti"]
    text = comment.strip() if comment else f"Started by Airflow: {ti.dag_id}.{ti.task_id}"
    return f"{text} {marker}"
