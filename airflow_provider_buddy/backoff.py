"""Waiting out transient trouble while waiting on a run: one policy for the triggers and the worker waits
(and for the worker's cancel when a task is killed).

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
"""How many times a trigger reads the object and cancels it before giving up on transient trouble."""

T = TypeVar("T")


class _Log(Protocol):
    def warning(self, msg: str, *args: Any) -> Any: ...
    def info(self, msg: str, *args: Any) -> Any: ...
    def error(self, msg: str, *args: Any) -> Any: ...


def backoff_delay(poll_interval: float, streak: int, retry_after: float | None = None) -> float:
    """The pause after the ``streak``-th failed look in a row: doubling from ``poll_interval``, honouring the server."""
    delay = min(poll_interval * float(2 ** min(max(streak, 1) - 1, 10)), MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return delay


def look_or_wait_out(log: _Log, look: Callable[[], T | None], streak: int, subject: str) -> tuple[T | None, int, float | None]:
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


def cancel_if_going_sync(
    log: _Log,
    subject: str,
    read: Callable[[], Any],
    cancel: Callable[[], Any],
    describe: Callable[[Any], str],
    *,
    attempts: int,
    pause: float,
) -> None:
    """
    A killed or timed-out task's cancel, from the worker: read the object, cancel it unless it already ended.
    After transient trouble it reads again and tries again (a cancel whose answer was lost then shows the
    object ended, and is not sent twice), ``attempts`` times at most; every outcome is logged, nothing raised.

    :param subject: the object, for the log ("Buddy execution 42").
    :param read: the object as it is now (has ``is_finished`` and ``status``).
    :param cancel: cancel it; returns it as the answer shows it.
    :param describe: the object, for people, from a read of it.
    """
    for attempt in range(attempts):
        try:
            current = read()
            if current.is_finished:
                log.info("Task killed; %s had already ended (%s)", describe(current), current.status)
                return
            log.warning("Task killed or timed out: cancelled %s", describe(cancel()))
            return
        except ProviderApiError as exc:
            if not exc.transient or attempt + 1 == attempts:
                log.error("Task killed, but cancelling %s failed: %s", subject, exc)
                return
            log.warning("Cancelling %s failed (%s); reading it again", subject, exc)
            time.sleep(pause)
