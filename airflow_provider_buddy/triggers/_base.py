"""The wait loop every trigger of this provider runs, whatever the service.

:class:`PollingTrigger` owns what is the same for a Buddy execution and a GoRules run: the shared
poller lease, the deadline (``end_time``) with an optional cancel, backoff on transient trouble logged
once per streak, an ``error`` event for permanent errors, never crashing the triggerer, and exactly
one event whose payload carries what the task needs to resume (Airflow's ``dag.test`` hands the task
only the event, not the defer kwargs). A service trigger says how to look once (:meth:`poll`), what
its events look like, and how to cancel.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent  # documented; no sdk/compat alias in 3.1-3.3

from airflow_provider_buddy.exceptions import ErrorKind, ProviderApiError
from airflow_provider_buddy.hooks._base import ApiHookBase
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.triggers._task_xcoms import store_task_xcoms
from airflow_provider_buddy.utils.backoff import CANCEL_ATTEMPTS, backoff_delay
from airflow_provider_buddy.utils.deferral import hold_until
from airflow_provider_buddy.utils.waiting import EndInTriggerer, EventStatus, WaitEvent

R = TypeVar("R")

ENDS_WELL = (EventStatus.SUCCESS.value, EventStatus.WAITING_FOR_APPROVAL.value)
"""Event statuses a task returns from (the wait ended well, or stopped at a gate as told): nothing left for a worker."""


@dataclass(frozen=True)
class Poll:
    """
    What one look at the watched object found.

    :param payload: the end event's payload, or None to keep waiting.
    :param next_in: seconds until the next look, or None for the regular interval.
    """

    payload: WaitEvent | None = None
    next_in: float | None = None

    @classmethod
    def done(cls, payload: WaitEvent) -> Poll:
        """The wait ends with ``payload``."""
        return cls(payload=payload)

    @classmethod
    def again(cls, next_in: float | None = None) -> Poll:
        """Keep waiting; look again after ``next_in`` seconds (default: the poll interval)."""
        return cls(next_in=next_in)


class PollingTrigger(BaseTrigger):
    """
    Polls one remote object until the wait ends, then fires exactly one event.

    Subclasses set :attr:`service`, :attr:`noun` and :attr:`hook_class` on the class, the attributes below in
    ``__init__``, and implement :meth:`poll`,
    :meth:`error_payload`, :meth:`timeout_payload`, :meth:`read_current`, :meth:`send_cancel`, :meth:`describe` and
    :meth:`resume_fields` (and :meth:`ended_note` when a found-ended object needs saying more).

    :param poll_interval: seconds between looks.
    :param end_time: epoch seconds; past it the wait ends with a ``timeout`` event.
    :param cancel_on_kill: cancel the object when the task is killed while deferred (Airflow 3.3+).
    :param cancel_on_timeout: cancel the object when ``end_time`` passes.
    :param resume_not_before: epoch seconds: an event that resumes the task on a worker is held until then.
        Airflow 3.1-3.3 can fail a task resumed within seconds of deferring (its deferring try's exit is reported
        late: apache/airflow#67287, #72716); the task sets this to its deferral time plus ``[buddy]
        resume_hold_seconds``.
    :param end_in_triggerer: when set, a wait that ends well ends the task right here (``TaskSuccessEvent`` after storing
        the XComs ``execute_complete`` would push): no worker is woken, so the race cannot hit it.
    """

    service: ClassVar[str]
    """Who answers, in log lines ("Buddy", "GoRules")."""
    noun: ClassVar[str]
    """What is waited on, in messages ("execution", "run")."""
    hook_class: ClassVar[type[ApiHookBase]]
    """The service's hook (its async methods read and cancel the watched object)."""

    conn_id: str
    poll_interval: float
    end_time: float | None
    cancel_on_kill: bool
    cancel_on_timeout: bool
    resume_not_before: float | None = None
    end_in_triggerer: EndInTriggerer | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A service trigger must say who answers, what it waits on and with which hook: forgetting one is an error
        when the class is defined, not a vague message at run time."""
        super().__init_subclass__(**kwargs)
        expected = {"service": str, "noun": str, "hook_class": type}
        missing = [name for name, kind in expected.items() if not isinstance(getattr(cls, name, None), kind)]
        if missing:
            raise TypeError(f"{cls.__name__} must set the class attribute(s) {', '.join(missing)} (see PollingTrigger)")

    # ---- what a service defines -------------------------------------------------------------------
    @property
    @abstractmethod
    def subject(self) -> str:
        """The watched object, for people: "Buddy execution 42"."""
        ...

    @property
    @abstractmethod
    def read_key(self) -> Hashable:
        """The shared-read key of the watched object (forgotten when the wait ends)."""
        ...

    def describe_wait(self) -> str:
        """The line logged when the wait starts."""
        return f"Waiting in the triggerer on {self.subject} (poll every {self.poll_interval:.0f}s)"

    @abstractmethod
    async def poll(self, poller: SharedPoller) -> Poll:
        """Look once (acting when the policy says so); raise :class:`ProviderApiError` on trouble reading."""
        ...

    @abstractmethod
    def error_payload(self, message: str, kind: ErrorKind | None) -> WaitEvent:
        """The payload of an ``error`` event."""
        ...

    @abstractmethod
    def timeout_payload(self, current: Any, message: str) -> WaitEvent:
        """The payload of a ``timeout`` event; ``current`` is the object's last state, when known."""
        ...

    @abstractmethod
    async def read_current(self, poller: SharedPoller) -> Any:
        """The object as it is now (a fresh read, not a shared one); it has ``is_finished`` and ``status``."""
        ...

    @abstractmethod
    async def send_cancel(self, poller: SharedPoller) -> Any:
        """Cancel the object; returns it as the answer shows it."""
        ...

    @abstractmethod
    def describe(self, current: Any) -> str:
        """The object, for people, from a read of it."""
        ...

    def ended_note(self, current: Any, cancel_sent: bool) -> str:
        """What happened when the object is found ended (``cancel_sent``: a cancel whose answer was lost went before)."""
        return f"it had already ended ({current.status})"

    async def cancel_if_going(self, poller: SharedPoller) -> tuple[Any, str]:
        """
        Cancel the object unless it already ended; returns its last state (or None) and what happened.

        After transient trouble (a read's retries spent, a cancel whose answer was lost or was a 5xx) it reads
        the object again and tries again, up to :data:`CANCEL_ATTEMPTS` times: a cancel that did reach the
        service then shows the object ended, and is never sent a second time.
        """
        failure: ProviderApiError | None = None
        sent = False
        try:
            for attempt in range(CANCEL_ATTEMPTS):
                if attempt:
                    await asyncio.sleep(min(self.poll_interval, 1.0))
                try:
                    current = await self.read_current(poller)
                    if current.is_finished:
                        return current, self.ended_note(current, sent)
                    sent = True
                    cancelled = await self.send_cancel(poller)
                    return cancelled, f"cancelled {self.describe(cancelled)}"
                except ProviderApiError as exc:
                    failure = exc
                    if not exc.transient:
                        break
            return None, f"could not cancel it: {failure}"
        finally:
            poller.forget(self.read_key)

    async def _task_still_deferred(self) -> bool:
        """True when the task instance is still deferred: Airflow 3.3 also calls ``on_kill`` on a triggerer whose
        triggers were handed to another one after its heartbeat lapsed (apache/airflow#73454), not only when a person
        cleared or marked the task."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return False
        try:
            # internal, kept: no public API lets a trigger read its task's state (the standard provider's
            # WorkflowTrigger makes the same call); the triggerer answers this task-runner request
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            map_index = ti.map_index if ti.map_index >= 0 else None
            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=map_index
            )
        except Exception as exc:  # cannot tell: treat the kill as a person's
            self.log.debug("Could not read the task's state (%s)", exc)
            return False
        key = ti.task_id if map_index is None else f"{ti.task_id}_{map_index}"
        return str(states.get(ti.run_id, {}).get(key) or "").lower() == "deferred"

    async def prepare(self, poller: SharedPoller) -> None:
        """Make the arguments usable before the first look. A task that starts in the triggerer (``start_from_trigger``)
        hands its arguments unrendered: Airflow renders them into the trigger just before :meth:`run`, so a trigger
        checks (and resolves) them here; a ValueError names the argument."""

    # ---- reading through the triggerer's shared poller ---------------------------------------------
    async def shared_hook(self, poller: SharedPoller) -> Any:
        """The service's hook for :attr:`conn_id`, on the poller's pooled client."""
        return await poller.shared_hook(self.hook_class, self.conn_id)

    async def read_watched(self, poller: SharedPoller, fetch: Callable[[Any], Awaitable[R]]) -> R:
        """``fetch(hook)``, read at most once per interval for every trigger waiting on the same object."""
        since = asyncio.get_running_loop().time()
        hook = await self.shared_hook(poller)
        return await poller.read(self.read_key, lambda: fetch(hook), max_age=self.poll_interval * 0.9, since=since)

    def resume_fields(self) -> dict[str, Any]:
        """What the resumed task needs besides the outcome (added to every event unless already set)."""
        return {"end_time": self.end_time}

    def ending_kwargs(self) -> dict[str, Any]:
        """The serialized kwargs of how the wait ends (every service trigger's :meth:`serialize` adds them)."""
        return {"resume_not_before": self.resume_not_before, "end_in_triggerer": self.end_in_triggerer}

    @abstractmethod
    def summary(self, event: dict[str, Any]) -> Any:
        """What the task's wait returns for ``event`` (its XCom summary)."""
        ...

    @abstractmethod
    def object_id(self, event: dict[str, Any]) -> Any:
        """The watched object's id, from ``event`` (what an operator returns)."""
        ...

    def link_xcoms(self, event: dict[str, Any]) -> dict[str, Any]:
        """The task's extra link, as XComs (a task that started in the triggerer never stored it itself)."""
        return {}

    def task_end_xcoms(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The XComs to end the task with in the triggerer, or None when a worker must take the event."""
        end = self.end_in_triggerer
        if end is None or event.get("status") not in ENDS_WELL:
            return None
        summary = self.summary(event)
        xcoms: dict[str, Any] = self.link_xcoms(event) if end.get("started_in_triggerer", True) else {}  # else stored at start
        if end["returns"] == "summary":
            return {**xcoms, "return_value": summary} if end["push_return_value"] else xcoms
        xcoms["summary"] = summary
        if end["push_return_value"]:
            xcoms["return_value"] = self.object_id(event)
        return xcoms

    # ---- the wait ---------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the wait ends; yield exactly one event."""
        poller = SharedPoller.for_running_loop()
        self.log.info("%s", self.describe_wait())
        async with poller.lease():
            try:
                await self.prepare(poller)
                payload = await self._wait(poller)
            except (ValueError, TypeError) as exc:  # a templated argument that rendered to something unusable
                payload = self.error_payload(str(exc), ErrorKind.CONFIGURATION)
            except ProviderApiError as exc:
                payload = self.error_payload(str(exc), exc.kind)
            except Exception as exc:  # never crash the triggerer: report and end
                self.log.exception("Unexpected error while waiting on %s", self.subject)
                payload = self.error_payload(f"unexpected {type(exc).__name__} while waiting: {exc}", None)
            finally:
                poller.forget(self.read_key)
        event: dict[str, Any] = {**self.resume_fields(), **payload}
        xcoms = self.task_end_xcoms(event)
        if xcoms is not None and self.end_in_triggerer is not None:
            read = self.end_in_triggerer.get("read_downstream", True)
            if not read or await store_task_xcoms(self, xcoms):
                self.log.info("%s; the task ends here, in the triggerer", event.get("message") or f"{self.subject} ended well")
                yield TaskSuccessEvent(xcoms=None if read else xcoms)
                return
        await hold_until(self.log, self.resume_not_before)
        yield TriggerEvent(event)  # type: ignore[no-untyped-call]

    async def _wait(self, poller: SharedPoller) -> WaitEvent:
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        streak = 0
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                return await self._timed_out(poller)
            try:
                result = await self.poll(poller)
            except ProviderApiError as exc:
                if not exc.transient:
                    return self.error_payload(str(exc), exc.kind)
                streak += 1
                delay = self.backoff(streak, exc.retry_after)
                if streak == 1:
                    self.log.warning("%s is not answering well (%s); still waiting, retrying in %.0fs", self.service, exc, delay)
                await asyncio.sleep(delay)
                next_poll = loop.time()
                continue
            if streak:
                self.log.info("%s answers again after %d failed polls", self.service, streak)
                streak = 0
            if result.payload is not None:
                return result.payload
            regular = max(next_poll + self.poll_interval, loop.time())
            next_poll = regular if result.next_in is None else loop.time() + result.next_in
            await asyncio.sleep(max(0.0, next_poll - loop.time()))

    def backoff(self, streak: int, retry_after: float | None) -> float:
        """The wait after the ``streak``-th failed look in a row: doubling, honouring the server, never past ``end_time``."""
        delay = backoff_delay(self.poll_interval, streak, retry_after)
        if self.end_time is not None:
            delay = min(delay, max(0.0, self.end_time - time.time()))
        return delay

    async def _timed_out(self, poller: SharedPoller) -> WaitEvent:
        message = f"Gave up waiting on {self.subject}: the deadline passed"
        current: Any = None
        if self.cancel_on_timeout:
            current, note = await self.cancel_if_going(poller)
            message += f"; {note}"
        else:
            message += f"; the {self.noun} was left going (cancel_on_timeout is off)"
        self.log.warning("%s", message)
        return self.timeout_payload(current, message)

    async def on_kill(self) -> None:
        """Airflow 3.3+: the task was killed while deferred; cancel the object when asked to."""
        if not self.cancel_on_kill:
            self.log.info("Task killed; %s left going (cancel_on_kill is off)", self.subject)
            return
        if await self._task_still_deferred():
            self.log.warning(
                "Airflow called on_kill although the task still waits on this trigger: the trigger was handed to another "
                "triggerer (apache/airflow#73454); %s is left to it, not cancelled",
                self.subject,
            )
            return
        poller = SharedPoller.for_running_loop()
        async with poller.lease():
            _, note = await self.cancel_if_going(poller)
        self.log.warning("Task killed while waiting on %s: %s", self.subject, note)
