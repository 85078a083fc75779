"""Handing a task's wait to the triggerer, both services: how the trigger may end it (in the triggerer, or on a
worker after the hold that keeps Airflow's defer race away), and taking it back when ``dag.test()`` resumes a task
that its trigger ended in the triggerer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_buddy.utils.settings import END_IN_TRIGGERER, RESUME_HOLD, read_bool, read_float
from airflow_provider_buddy.utils.waiting import EndInTriggerer

if TYPE_CHECKING:
    from airflow.triggers.base import StartTriggerArgs  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3


def trigger_ending(task: Any, *, returns: str, may_end_in_triggerer: bool = True, started_in_triggerer: bool = False) -> dict[str, Any]:
    """
    The trigger kwargs saying how the wait ends: a good end ends the task in the triggerer (unless the task has an
    ``on_success_callback`` or ``outlets``, which Airflow only handles on a worker, or ``[buddy] end_in_triggerer``
    is off), and any other event resumes the task on a worker no sooner than ``[buddy] resume_hold_seconds`` from
    now.

    :param task: the deferring operator or sensor.
    :param returns: ``"id"`` or ``"summary"``: what the task returns (see :class:`EndInTriggerer`).
    :param may_end_in_triggerer: False when the worker must see the event whatever it is.
    :param started_in_triggerer: the wait starts in the triggerer (``start_from_trigger``): the task's links are stored
        with its end, and its downstream tasks (not known yet when the DAG is being built) are taken to read it.
    """
    end: EndInTriggerer | None = None
    if may_end_in_triggerer and read_bool(END_IN_TRIGGERER) and not task.on_success_callback and not task.outlets:
        end = EndInTriggerer(
            returns=returns,
            push_return_value=bool(task.do_xcom_push),
            started_in_triggerer=started_in_triggerer,
            read_downstream=started_in_triggerer or bool(getattr(task, "downstream_task_ids", True)),
        )
    return {"resume_not_before": time.time() + read_float(RESUME_HOLD), "end_in_triggerer": end}


def sensor_start_trigger_args(sensor: Any, trigger_cls: str, trigger_kwargs: Mapping[str, Any]) -> StartTriggerArgs:
    """
    How Airflow 3.2+ starts a sensor's wait straight in the triggerer (no worker slot at all; its templates are
    rendered there): ``trigger_cls`` with ``trigger_kwargs`` and how the wait ends (:func:`trigger_ending`, the task
    returning its ``wait_returns``), resuming in ``execute_complete``, within the sensor's ``timeout``. Airflow 3.1
    ignores it and runs the sensor's ``execute``, which defers.
    """
    from airflow.triggers.base import StartTriggerArgs  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3

    return StartTriggerArgs(
        trigger_cls=trigger_cls,
        trigger_kwargs={
            **trigger_kwargs,
            "end_in_triggerer": trigger_ending(sensor, returns=sensor.wait_returns, started_in_triggerer=True)["end_in_triggerer"],
        },
        next_method="execute_complete",
        next_kwargs=None,
        timeout=timedelta(seconds=float(sensor.timeout)) if sensor.timeout else None,
    )


def ended_in_triggerer(event: Any) -> bool:
    """True when the task resumed with a task-end event's state instead of an event payload: ``dag.test()`` does
    that for a task its trigger ended in the triggerer (a real deployment never resumes such a task)."""
    return not isinstance(event, dict)


async def hold_until(log: Any, resume_not_before: float | None) -> None:
    """Wait until ``resume_not_before`` (epoch seconds) before an event that resumes a task on a worker."""
    wait = (resume_not_before or 0.0) - time.time()
    if wait > 0:
        log.info(
            "Holding the result %.1fs, until Airflow has registered this task's deferral (its defer race, "
            "apache/airflow#67287 and #72716; [buddy] resume_hold_seconds)",
            wait,
        )
        await asyncio.sleep(wait)


def startable_in_triggerer(*arguments: Any) -> bool:
    """
    True when a task handing these arguments to its trigger can start straight in the triggerer: none of them pulls an
    XCom (an XComArg, or a template that mentions XComs), also inside a list or dict such as approval answers, nor is a
    value only a worker resolves (a ``@dag`` parameter, a mapped task group's argument). Airflow 3.3 renders a
    started-in-the-triggerer task's templates there (``{{ params.execution_id }}`` works), but its triggerer cannot serve
    ``ti.xcom_pull(...)`` (``GetXComSequenceSlice`` is not among the requests it answers), and such a task then waits
    for ever.
    """
    from airflow_provider_buddy.utils.arguments import pulls_xcom

    return not any(pulls_xcom(value) for value in arguments)
