"""The waiting vocabulary both services share: the approval policy, what a waiter does next, how a wait
ends, and the keys every wait's one event carries. Used by the sensors' pokes, the triggers and the
operators' worker waits of Buddy and GoRules alike. No I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypedDict, TypeVar

from airflow_provider_buddy.models.status import WaitKind

E = TypeVar("E", bound="WaitEvent")
S = TypeVar("S")

TIMEOUT_MARGIN = 5.0
"""Seconds before ``execution_timeout`` at which a wait ends, so it can cancel its run before Airflow kills it."""


class ApprovalPolicy(str, Enum):
    """What a waiter does when the execution or run stops for a person.

    ``wait``: keep waiting while someone answers in the service. ``succeed``: finish successfully at once,
    returning what it waits for, so the DAG can put its own gate next. ``fail``: fail, naming what waits.
    ``approve``: approve it (with ``approval_variables`` for a "pass arguments" prompt) and keep waiting.
    """

    WAIT = "wait"
    SUCCEED = "succeed"
    FAIL = "fail"
    APPROVE = "approve"

    @classmethod
    def parse(cls, value: Any, *, parameter: str = "on_approval") -> ApprovalPolicy:
        """Read a policy, with an error naming the parameter and the allowed values."""
        if isinstance(value, ApprovalPolicy):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"{parameter} must be one of {allowed}, got {value!r}") from None


class EventStatus(str, Enum):
    """The ``status`` of the one event a wait ends with."""

    SUCCESS = "success"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"
    ERROR = "error"


class Step(str, Enum):
    """What the waiter does next."""

    KEEP_WAITING = "keep_waiting"
    APPROVE = "approve"
    FINISH = "finish"


@dataclass(frozen=True)
class Decision:
    """
    The outcome of one look at an execution or run: what to do next, and what a person reads about it.

    :param step: keep waiting, approve, or finish.
    :param status: the event status when finishing.
    :param message: what a person reads.
    :param waits_for: what the execution or run waits for, at a gate.
    :param waiting_action_execution_id: the waiting action execution, at a Buddy gate.
    :param waiting_action_name: what waits, by name (the Buddy action; the GoRules environments).
    """

    step: Step
    status: EventStatus | None = None
    message: str = ""
    waits_for: WaitKind | None = None
    waiting_action_execution_id: str | None = None
    waiting_action_name: str | None = None

    @classmethod
    def finish(cls, status: EventStatus, message: str) -> Decision:
        """End the wait with ``status``."""
        return cls(Step.FINISH, status, message)

    @classmethod
    def deadline_passed(cls, subject: str) -> Decision:
        """End a wait in the worker whose deadline passed (``TIMEOUT``)."""
        return cls.finish(EventStatus.TIMEOUT, f"Gave up waiting on {subject}: the deadline passed")


class WaitEvent(TypedDict, total=False):
    """The keys every wait's event carries, whatever the service (each service's event adds its own)."""

    status: str
    """An :class:`EventStatus` value."""
    message: str
    waits_for: str | None
    """A :class:`WaitKind` value at a gate."""
    end_time: float | None
    """The wait's deadline (epoch seconds), so a resumed task can wait again until the same deadline."""
    error_kind: str | None
    """An ``ErrorKind`` value on an ``error`` event."""


class _EndInTriggererChoices(TypedDict, total=False):
    started_in_triggerer: bool
    read_downstream: bool


class EndInTriggerer(_EndInTriggererChoices):
    """
    How a wait that ends well ends its task in the triggerer, without a worker: which value the task returns.

    :param returns: ``"id"`` (an operator: it returns the execution or run id, and its summary goes to XCom
        ``summary``) or ``"summary"`` (a sensor: it returns the summary).
    :param push_return_value: whether the return value is pushed to XCom (the task's ``do_xcom_push``).
    :param started_in_triggerer: the task never ran on a worker (``start_from_trigger``), so its extra link is stored
        with its end too (absent: True).
    :param read_downstream: the task has downstream tasks, which may read its XComs (absent: True). Only then are
        they stored through the Task SDK, one call each; a task nobody reads hands them to Airflow with its end event
        (stored JSON-encoded once more, which the UI and the REST API decode, a downstream task would not).
    """

    returns: str
    push_return_value: bool


def end_of_wait(log: Any, event: E, summary: Callable[[E], S], error: Callable[[E], Exception]) -> S:
    """
    What a task returns when its wait ended: the summary of a wait that ended well (success, or stopped at a gate
    with ``on_approval='succeed'``), logged; otherwise ``error(event)`` is raised.

    :param log: the task's logger.
    :param event: the wait's final event.
    :param summary: the service's summary of an event.
    :param error: the error a wait that ended badly fails the task with.
    """
    status = event.get("status")
    message = str(event.get("message") or "")
    if status == EventStatus.SUCCESS.value:
        log.info("%s", message)
        return summary(event)
    if status == EventStatus.WAITING_FOR_APPROVAL.value:
        log.info("%s; finishing so the DAG's own gate can answer it (on_approval='succeed')", message)
        return summary(event)
    raise error(event)


def with_link(message: str, url: str | None) -> str:
    """``message`` with `` (url)`` appended, unless it already names it."""
    return f"{message} ({url})" if url and url not in message else message


def deadline_before_timeout(execution_timeout: timedelta | None, context: Any, margin: float = TIMEOUT_MARGIN) -> float | None:
    """
    When the task's ``execution_timeout`` runs out (epoch seconds), a little early so a wait can cancel first.

    :param execution_timeout: the task's timeout, or None.
    :param context: the task's context (its ``ti.start_date`` is the start).
    :param margin: seconds to end early (at most 5% of the timeout).
    """
    if execution_timeout is None:
        return None
    started = getattr(context["ti"], "start_date", None)
    begin = started.timestamp() if isinstance(started, datetime) else time.time()
    seconds = execution_timeout.total_seconds()
    return begin + seconds - min(margin, seconds * 0.05)
