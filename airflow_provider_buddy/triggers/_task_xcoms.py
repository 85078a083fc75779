"""Ending a task in the triggerer with its XComs stored as a worker stores them."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger


async def store_task_xcoms(trigger: BaseTrigger, xcoms: dict[str, Any]) -> bool:
    """
    Store the XComs of the task ``trigger`` serves the way a worker does (serialized by the Task SDK, sent through the
    triggerer's supervisor), and say whether that worked. Not as ``TaskSuccessEvent(xcoms=...)``: Airflow 3.3 stores
    those JSON-encoded once more (``XComModel.set`` on an already-encoded value), so a downstream task would read a
    dict or a number back as a string. False when this process cannot (no task instance, or an Airflow whose
    triggerer takes no ``SetXCom``): the caller then hands the event to a worker, which pushes them itself.

    :param trigger: the trigger ending its task (the triggerer sets its ``task_instance``).
    :param xcoms: XCom key to value.
    """
    ti = getattr(trigger, "task_instance", None)
    if ti is None:
        return False
    try:
        from airflow.sdk import BaseXCom  # Airflow 3.1 exports no BaseXCom there (and its BaseXCom has no aset)

        for key, value in xcoms.items():
            await BaseXCom.aset(key, value, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
    except Exception as exc:  # an Airflow whose triggerer cannot: the worker pushes them instead
        trigger.log.warning("Could not store the task's XComs from the triggerer (%s: %s); a worker ends the task", type(exc).__name__, exc)
        return False
    return True
