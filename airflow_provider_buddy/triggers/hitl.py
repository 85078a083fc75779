"""Reading a person's answer to a human-in-the-loop request from the triggerer, safe under Airflow's defer race.

Airflow records the answer to a human-in-the-loop request; only the triggerer can read it back (the standard
provider's :class:`~airflow.providers.standard.triggers.hitl.HITLTrigger` does). Both gates of this provider wait
for it here: :class:`HeldHITLTrigger` for any HITL operator (used by
:class:`~airflow_provider_buddy.operators.hitl.HeldHITLBranchOperator`), and the Buddy approval gate's trigger.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.standard.triggers.hitl import HITLTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_buddy.utils.deferral import hold_until

ASK = "ask"
"""The ``buddy_gate`` value of an event that sends the task back to ask (no answer recorded)."""
GATE_MODES = ("wait", "recorded")


async def answer_of(hitl: dict[str, Any]) -> dict[str, Any] | None:
    """The answer as the standard ``HITLTrigger`` built from ``hitl`` (its kwargs) reports it."""
    async for event in HITLTrigger(**copy.deepcopy(hitl)).run():  # it consumes its params: give it a copy
        return dict(event.payload)
    return None


async def recorded_answer(hitl: dict[str, Any], log: Any) -> dict[str, Any] | None:
    """
    The answer an earlier try's request got, if any, without waiting: the standard trigger past its deadline with no
    default reports an answer that exists and never writes one.

    :param hitl: the standard ``HITLTrigger``'s kwargs for this task instance's request.
    :param log: where to say that there is none.
    """
    probe = {**hitl, "defaults": None, "timeout_datetime": datetime.now(timezone.utc) - timedelta(seconds=1)}
    try:
        payload = await answer_of(probe)
    except Exception as exc:  # no request recorded for this task instance (404): nothing to read
        log.info("No human-in-the-loop request recorded for this task instance (%s)", type(exc).__name__)
        return None
    if payload is None or payload.get("error_type") == "timeout":
        return None
    return payload


def check_mode(mode: str) -> str:
    """``mode`` when it is ``wait`` or ``recorded``."""
    if mode not in GATE_MODES:
        raise ValueError(f"mode must be 'wait' or 'recorded', got {mode!r}")
    return mode


class HeldHITLTrigger(BaseTrigger):
    """
    Waits for (``wait``) or reads (``recorded``) the answer to a human-in-the-loop request, then resumes the task no
    sooner than ``resume_not_before``: a task resumed within seconds of deferring can be failed by Airflow's scheduler
    (apache/airflow#67287, #72716), and a fast answer would do exactly that.

    :param hitl: the standard ``HITLTrigger``'s kwargs for this request (its ``serialize()``).
    :param mode: ``wait`` (the first try: wait for the answer, as ``HITLTrigger`` does) or ``recorded`` (a retry after
        Airflow failed a try: read the answer recorded for it; none recorded sends the task back to ask).
    :param resume_not_before: epoch seconds: the event is held until then.
    """

    def __init__(self, *, hitl: dict[str, Any], mode: str = "wait", resume_not_before: float | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.hitl = dict(hitl)
        self.mode = check_mode(mode)
        self.resume_not_before = resume_not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and kwargs."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"hitl": self.hitl, "mode": self.mode, "resume_not_before": self.resume_not_before},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Get the answer (or learn there is none), hold, and hand it to the task."""
        answer = await (answer_of(self.hitl) if self.mode == "wait" else recorded_answer(self.hitl, self.log))
        await hold_until(self.log, self.resume_not_before)
        if answer is None:
            self.log.info("No answer recorded for this request yet: the task asks again")
            yield TriggerEvent({"buddy_gate": ASK})  # type: ignore[no-untyped-call]
            return
        yield TriggerEvent(answer)  # type: ignore[no-untyped-call]
