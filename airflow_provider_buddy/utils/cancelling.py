"""Cancelling a run from a task, both services: the cancel of a killed or timed-out task, and the cancel
operators' "cancel unless it already ended". Each reads the object first, so a cancel is never sent to an
object that ended, and a cancel whose answer was lost is never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from airflow_provider_buddy.exceptions import ProviderApiError
from airflow_provider_buddy.utils.backoff import CANCEL_ATTEMPTS, TaskLog


class _Ends(Protocol):
    """An execution or run: it knows whether it ended, and its status."""

    @property
    def is_finished(self) -> bool: ...
    @property
    def status(self) -> str | None: ...


E = TypeVar("E", bound=_Ends)


def cancel_if_going_sync(
    log: TaskLog,
    subject: str,
    read: Callable[[], Any],
    cancel: Callable[[], Any],
    describe: Callable[[Any], str],
    *,
    pause: float,
    attempts: int = CANCEL_ATTEMPTS,
    why: str = "Task killed or timed out",
) -> None:
    """
    A killed or timed-out task's cancel (or a failed DAG run's), from the worker: read the object, cancel it unless it already ended.
    After transient trouble it reads again and tries again (a cancel whose answer was lost then shows the
    object ended, and is not sent twice), ``attempts`` times at most; every outcome is logged, nothing raised.

    :param subject: the object, for the log ("Buddy execution 42").
    :param read: the object as it is now (has ``is_finished`` and ``status``).
    :param cancel: cancel it; returns it as the answer shows it.
    :param describe: the object, for people, from a read of it.
    :param why: why it is cancelled, for the log.
    """
    for attempt in range(attempts):
        try:
            current = read()
            if current.is_finished:
                log.info("%s; %s had already ended (%s)", why, describe(current), current.status)
                return
            log.warning("%s: cancelled %s", why, describe(cancel()))
            return
        except ProviderApiError as exc:
            if not exc.transient or attempt + 1 == attempts:
                log.error("%s, but cancelling %s failed: %s", why, subject, exc)
                return
            log.warning("Cancelling %s failed (%s); reading it again", subject, exc)
            time.sleep(pause)


def cancel_unless_ended(
    log: TaskLog,
    read: Callable[[], E],
    cancel: Callable[[], E],
    describe: Callable[[E], str],
    *,
    refused: type[ProviderApiError],
    fail_if_finished: bool,
    note: str = "",
) -> E:
    """
    The cancel operators' cancel: read the object, cancel it unless it already ended. When the service refuses the
    cancel (``refused``, a 4xx) the object is read again: it ended meanwhile, or the refusal is raised.

    :param refused: the service's client-error class.
    :param fail_if_finished: raise ``refused`` when the object had already ended.
    :param note: added to the "Cancelled ..." log line (the comment sent).
    :returns: the object's last state.
    """
    current = read()
    if not current.is_finished:
        try:
            cancelled = cancel()
        except refused:
            current = read()
            if not current.is_finished:
                raise
        else:
            log.info("Cancelled %s (%s)%s", describe(cancelled), cancelled.status, note)
            return cancelled
    message = f"{describe(current)} had already ended ({current.status}); nothing to cancel"
    if fail_if_finished:
        raise refused(message + " (fail_if_finished=True)")
    log.info("%s", message)
    return current
