"""Recognising the Buddy run a task instance started before (task retry, worker crash, lost answer).

Buddy has no idempotency key, so the run's ``comment`` carries a short marker derived from the task
instance's identity (DAG, run, task, map index) and the try that started it:
``"Release main [airflow:1a2b3c4d5e6f7a8b] (try 2)"``. A later try lists recent executions and finds it.

Which earlier run a try may carry on with depends on the try's *generation*: the tries since the task
instance was last cleared. Airflow reckons its first try as ``max_tries - retries + 1`` (clearing sets
``max_tries`` to the last try plus ``retries``); tries after it are automatic retries of the same attempt.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MARKER_PREFIX = "[airflow:"
SEARCH_DEPTH = 100
_TRY_TAG = re.compile(r" \(try (\d+)\)")


def task_marker(context: Any) -> str:
    """The marker of the running task instance: the same for every try of it, different for any other."""
    ti = context["ti"]
    identity = f"{ti.dag_id}|{ti.run_id}|{ti.task_id}|{getattr(ti, 'map_index', -1)}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}]"


def marked_comment(comment: str | None, marker: str, context: Any, *, try_number: int | None = None) -> str:
    """The run's comment with the marker (and the try that starts the run) appended; a default comment names the task."""
    ti = context["ti"]
    text = comment.strip() if comment else f"Started by Airflow: {ti.dag_id}.{ti.task_id}"
    tail = f" (try {try_number})" if try_number is not None else ""
    return f"{text} {marker}{tail}"


def marked_try(comment: str | None, marker: str) -> int | None:
    """The try that started a run, read from its comment; None without the marker or the try tag."""
    at = (comment or "").find(marker)
    if at < 0:
        return None
    found = _TRY_TAG.match(comment or "", at + len(marker))
    return int(found.group(1)) if found else None


def try_number_of(ti: Any) -> int:
    """The running try's number (1 for the first)."""
    number = getattr(ti, "try_number", None)
    return number if isinstance(number, int) and number > 0 else 1


def first_try_of_generation(ti: Any, retries: Any) -> int:
    """
    The first try since the task instance was last cleared, as Airflow reckons it.

    When ``max_tries`` is unknown the running try counts as the first one, so no earlier try is taken
    for an automatic retry of it (the safe side: an ended run is then never reused).
    """
    try_number = try_number_of(ti)
    max_tries = getattr(ti, "max_tries", None)
    if not isinstance(max_tries, int) or isinstance(max_tries, bool):
        return try_number
    first = max_tries - (retries if isinstance(retries, int) else 0) + 1
    return min(max(first, 1), try_number)
