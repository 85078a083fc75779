"""``HeldHITLBranchOperator``: Airflow's human-in-the-loop branch gate, safe under Airflow's defer race.

Airflow can fail a human-in-the-loop task answered within seconds of asking: the scheduler gets the parking try's
exit after the answer has queued the task again, and marks it failed (apache/airflow#67287, #72716); a retry then
asks again and the first answer is lost. This gate waits for the answer in the triggerer and resumes no sooner than
``[buddy] resume_hold_seconds`` after asking (out of the race's reach), and a retry reads the answer Airflow recorded
for an earlier try instead of asking again. Otherwise it is the standard ``HITLBranchOperator``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.providers.standard.triggers.hitl import HITLTrigger

from airflow_provider_buddy.utils.reattach import first_try_of_generation, try_number_of
from airflow_provider_buddy.utils.settings import RESUME_HOLD, read_float

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3

GATE_RETRIES = 1
"""A gate's default retries: a try Airflow fails after the answer came is recovered by the next one."""
GATE_RETRY_DELAY = timedelta(seconds=30)


def under_dag_test(context: Context) -> bool:
    """True in ``dag.test()`` / ``airflow dags test``: no triggerer there can read answers, so a gate waits as
    Airflow's own does (the test loop resolves it)."""
    dag_run = context.get("dag_run")
    return getattr(dag_run, "triggering_user_name", None) == "dag_test"


def awaiting_input(exc: BaseException) -> bool:
    """True for Airflow 3.3's ``TaskAwaitingInput`` (a BaseException, like ``TaskDeferred``; not importable on 3.1)."""
    return type(exc).__name__ == "TaskAwaitingInput"


def hitl_kwargs(operator: Any, context: Context, timeout: timedelta | None = None) -> dict[str, Any]:
    """The standard ``HITLTrigger``'s kwargs for ``operator``'s request in this task instance."""
    return {
        "ti_id": context["ti"].id,
        "options": operator.options,
        "params": operator.serialized_params,
        "defaults": operator.defaults,
        "multiple": operator.multiple,
        "timeout_datetime": datetime.now(timezone.utc) + timeout if timeout else None,
    }


class HeldGate(HITLOperator):
    """
    What both of this provider's gates do around Airflow's human-in-the-loop operators: ask as the standard operator
    does, but wait for the answer in a trigger of their own, held until ``[buddy] resume_hold_seconds`` after asking —
    on Airflow 3.3 instead of parking the task (``TaskAwaitingInput``), on 3.1/3.2 instead of the standard
    ``HITLTrigger``. A subclass says which trigger that is (:meth:`gate_trigger`); put this class before the standard
    operator in its bases.
    """

    def gate_trigger(self, hitl: dict[str, Any], mode: str, resume_not_before: float) -> BaseTrigger:
        """The trigger that waits for (``wait``) or reads (``recorded``) the answer to the request ``hitl`` describes."""
        raise NotImplementedError

    def holds_gate(self) -> bool:
        """Whether the standard trigger is swapped for :meth:`gate_trigger` (True)."""
        return True

    def _ask(self, context: Context) -> Any:
        try:
            return super().execute(context)  # 3.1/3.2: the standard gate defers (see defer below)
        except BaseException as exc:  # Airflow 3.3's TaskAwaitingInput, like TaskDeferred, is a BaseException
            if not awaiting_input(exc) or under_dag_test(context):
                raise
        # Airflow 3.3 parks the task awaiting input and resumes it the moment a person answers, into the race; an answer
        # given while it parks can even leave it parked for good. The gate's trigger waits instead.
        self._defer_held(hitl_kwargs(self, context, timeout=self.response_timeout), mode="wait")

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: Any = None) -> NoReturn:
        """Airflow 3.1/3.2: the standard gate's trigger, swapped for the gate's own."""
        if isinstance(trigger, HITLTrigger) and self.holds_gate():
            self._defer_held(trigger.serialize()[1], mode="wait", timeout=timeout)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def _defer_held(self, hitl: dict[str, Any], *, mode: str, timeout: Any = None) -> NoReturn:
        trigger = self.gate_trigger(hitl, mode, time.time() + read_float(RESUME_HOLD))
        super().defer(trigger=trigger, method_name="execute_complete", timeout=timeout)


class HeldHITLBranchOperator(HeldGate, HITLBranchOperator):
    """
    Airflow's ``HITLBranchOperator`` (a person picks the branch in "Required actions"), with the answer never lost to
    Airflow's defer race: it is read in the triggerer and handed to the task no sooner than ``[buddy]
    resume_hold_seconds`` after asking, and a retry applies the answer Airflow recorded for an earlier try instead of
    asking again. Takes the standard operator's arguments.

    :param options_mapping: option to the task id (or ids) it runs, as the standard operator's.
    :param retries: default 1 (a try Airflow failed is recovered by the next), ``retry_delay`` default 30 s.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retries", GATE_RETRIES)
        kwargs.setdefault("retry_delay", GATE_RETRY_DELAY)
        super().__init__(**kwargs)

    def execute(self, context: Context) -> Any:
        """Ask (the first try of a generation) or read the answer an earlier try got (a retry)."""
        ti = context["ti"]
        if try_number_of(ti) > first_try_of_generation(ti, self.retries) and not under_dag_test(context):
            self.log.info("An earlier try of this gate asked already: taking the answer Airflow recorded for it, if any")
            self._defer_held(hitl_kwargs(self, context), mode="recorded")
        return self._ask(context)

    def gate_trigger(self, hitl: dict[str, Any], mode: str, resume_not_before: float) -> BaseTrigger:
        """:class:`~airflow_provider_buddy.triggers.hitl.HeldHITLTrigger`: the answer, handed over after the hold."""
        from airflow_provider_buddy.triggers.hitl import HeldHITLTrigger

        return HeldHITLTrigger(hitl=hitl, mode=mode, resume_not_before=resume_not_before)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The answer: branch as the standard gate does; none recorded for a retry: ask now."""
        from airflow_provider_buddy.triggers.hitl import ASK

        if event.get("buddy_gate") == ASK:
            return self._ask(context)
        return super().execute_complete(context=context, event=event)
