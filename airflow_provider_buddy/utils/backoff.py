"""Waiting out transient trouble while waiting on a run: one policy for the triggers and the worker waits.

A run goes on in Buddy or the BRMS whatever the answers to our reads, so network errors, 408/429/5xx and
garbled answers (once the hook's own retries are spent) never end a wait: the next look comes later,
doubling up to :data:`MAX_BACKOFF`, never sooner than the server asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from airflow_provider_buddy.exceptions import ProviderApiError

MAX_BACKOFF = 300.0
"""The longest pause between looks while the server keeps answering badly (seconds)."""
CANCEL_ATTEMPTS = 5
"""How many times a cancel reads the object and cancels it before giving up on transient trouble."""
LOOKUP_ATTEMPTS = 5
"""How many times a task looks for the run its request created (after a lost answer) before giving up."""

T = TypeVar("T")


class TaskLog(Protocol):
    """What a task's or trigger's logger offers (the parts used here)."""

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
    def error(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...


def backoff_delay(poll_interval: float, streak: int, retry_after: float | None = None) -> float:
    """The pause after the ``streak``-th failed look in a row: doubling from ``poll_interval``, honouring the server."""
    delay = min(poll_interval * float(2 ** min(max(streak, 1) - 1, 10)), MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return delay


def look_or_wait_out(log: TaskLog, look: Callable[[], T | None], streak: int, subject: str) -> tuple[T | None, int, float | None]:
    """
    ``look()``, where transient trouble does not end the wait (permanent errors still raise).

    :param log: where the first failure of a streak and the recovery are logged (once each).
    :param look: one look at the run: the end event's payload, or None to keep waiting.
    :param streak: failed looks in a row so far.
    :param subject: what is waited on, for the log ("Buddy execution 42").
    :returns: the payload (or None), the new count of failed looks in a row, and the wait the server asked for.
    """
    try:
        payload = look()
    except ProviderApiError as exc:
        if not exc.transient:
            raise
        if streak == 0:
            log.warning("Could not look at %s (%s); still waiting, looking again later", subject, exc)
        return None, streak + 1, exc.retry_after
    if streak:
        log.info("%s can be read again after %d failed looks", subject, streak)
    return payload, 0, None


def wait_in_worker(log: TaskLog, look: Callable[[], T | None], subject: str, poll_interval: float, deadline: float | None) -> T | None:
    """
    Look until the wait ends, from the worker: transient trouble backs off (never ends the wait), permanent errors
    raise.

    :param look: one look at the run: the end event's payload, or None to keep waiting.
    :param subject: what is waited on, for the log ("Buddy execution 42").
    :param poll_interval: seconds between looks.
    :param deadline: epoch seconds, or None.
    :returns: the end payload, or None when ``deadline`` passed first.
    """
    streak = 0
    while True:
        payload, streak, retry_after = look_or_wait_out(log, look, streak, subject)
        if payload is not None:
            return payload
        if deadline is not None and time.time() >= deadline:
            return None
        time.sleep(backoff_delay(poll_interval, streak, retry_after) if streak else poll_interval)
