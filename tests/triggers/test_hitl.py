"""HeldHITLTrigger: a human-in-the-loop answer handed to the task only after the hold (Airflow's defer race)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow_provider_buddy.triggers.hitl import ASK, HeldHITLTrigger

HITL = {
    "ti_id": "0190b8a6-0000-7000-8000-000000000001",
    "options": ["Promote", "Reject"],
    "params": {},
    "defaults": ["Reject"],
    "multiple": False,
    "timeout_datetime": None,
}


async def first(trigger: HeldHITLTrigger) -> Any:
    async def run() -> Any:
        async for event in trigger.run():
            return event
        raise AssertionError("no event")

    return await asyncio.wait_for(run(), 15)


async def test_a_retry_with_no_recorded_answer_asks_again_only_after_the_hold() -> None:
    """No request recorded for this task instance (nothing answers here): the task goes back to ask, held."""
    hold = time.time() + 1.0
    event = await first(HeldHITLTrigger(hitl=HITL, mode="recorded", resume_not_before=hold))
    assert event.payload == {"buddy_gate": ASK}
    assert time.time() >= hold


def test_it_survives_serialization_and_refuses_an_unknown_mode() -> None:
    path, kwargs = HeldHITLTrigger(hitl=HITL, mode="recorded", resume_not_before=12.5).serialize()
    assert path == "airflow_provider_buddy.triggers.hitl.HeldHITLTrigger"
    rebuilt = HeldHITLTrigger(**kwargs)
    assert (rebuilt.hitl, rebuilt.mode, rebuilt.resume_not_before) == (HITL, "recorded", 12.5)
    try:
        HeldHITLTrigger(hitl=HITL, mode="later")
    except ValueError as exc:
        assert "mode must be 'wait' or 'recorded', got 'later'" in str(exc)
    else:
        raise AssertionError("an unknown mode was accepted")
