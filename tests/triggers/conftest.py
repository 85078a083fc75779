"""The triggerer's side of a task that ends in the triggerer: its supervisor channel, which stores the XComs a
trigger sends (``SetXCom``) as a worker's would be stored. A stand-in for the channel only (the real one is the
triggerer process, which the deployment suite runs); the values are read back as a downstream task reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest


@dataclass
class TriggererXComs:
    """The ``SetXCom`` messages a trigger sent to its supervisor."""

    sent: list[Any] = field(default_factory=list)

    async def asend(self, msg: Any) -> None:
        from airflow.sdk.execution_time.comms import SetXCom

        if isinstance(msg, SetXCom):  # the other messages (MaskSecret, …) are not what these tests read
            self.sent.append(msg)

    def values(self) -> dict[str, Any]:
        """Each key's value as a downstream task's ``xcom_pull`` deserializes it."""
        from airflow.sdk.serde import deserialize

        return {msg.key: deserialize(msg.value) for msg in self.sent}


@pytest.fixture
def triggerer_xcoms(monkeypatch: pytest.MonkeyPatch) -> TriggererXComs:
    """The triggerer's supervisor channel, recording what triggers store."""
    import airflow.sdk.execution_time.task_runner as task_runner

    comms = TriggererXComs()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    return comms


def in_triggerer(trigger: Any, task_id: str = "wait") -> Any:
    """``trigger`` as the triggerer runs it: with the task instance it serves."""
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id=task_id, run_id="r", map_index=-1)
    return trigger
