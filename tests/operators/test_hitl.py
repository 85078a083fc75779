"""HeldHITLBranchOperator: the standard branch gate, waiting for its answer in a held trigger."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest


def test_the_standard_trigger_is_swapped_for_the_held_one() -> None:
    """Airflow 3.1/3.2 defer the standard gate to HITLTrigger: ours waits in HeldHITLTrigger, held by the setting."""
    from airflow.providers.common.compat.sdk import TaskDeferred  # airflow.exceptions on 3.1, airflow.sdk.exceptions on 3.2+
    from airflow.providers.standard.triggers.hitl import HITLTrigger

    from airflow_provider_buddy.operators.hitl import HeldHITLBranchOperator
    from airflow_provider_buddy.triggers.hitl import HeldHITLTrigger

    gate = HeldHITLBranchOperator(
        task_id="gate", subject="Promote?", options=["Promote", "Reject"], options_mapping={"Promote": "a", "Reject": "b"}
    )
    assert gate.retries == 1  # a try Airflow fails is recovered by the next
    standard = HITLTrigger(
        ti_id="0190b8a6-0000-7000-8000-000000000001",
        options=["Promote", "Reject"],
        params={},
        defaults=None,
        multiple=False,
        timeout_datetime=datetime.now(timezone.utc),
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        gate.defer(trigger=standard, method_name="execute_complete")
    trigger = deferred.value.trigger
    assert isinstance(trigger, HeldHITLTrigger) and trigger.mode == "wait"
    assert trigger.hitl["ti_id"] == "0190b8a6-0000-7000-8000-000000000001" and trigger.hitl["options"] == ["Promote", "Reject"]
    assert trigger.resume_not_before is not None and trigger.resume_not_before >= before
    assert deferred.value.method_name == "execute_complete"
