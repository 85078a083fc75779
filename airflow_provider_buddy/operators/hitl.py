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

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.providers.standard.triggers.hitl import HITLTrigger

from airflow_provider_buddy.utils.reattach import first_try_of_generation, try_number_of
from airflow_provider_buddy.utils.settings import RESUME_HOLD, read_float

if TYPE_CHECKING:
    from airflow.sdk import Context

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


class HeldHITLBranchOperator(HITLBranchOperator):
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

    def _ask(self, context: Context) -> Any:
        try:
            return super().execute(context)  # 3.1/3.2: the standard gate defers (see defer below)
        except BaseException as exc:
            if not awaiting_input(exc) or under_dag_test(context):
                raise
        # Airflow 3.3 parks the task awaiting input and resumes it the moment a person answers: into the race
        self._defer_held(hitl_kwargs(self, context, timeout=self.response_timeout), mode="wait")

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None = None, timeout: Any = None) -> NoReturn:
        """Airflow 3.1/3.2: the standard gate's trigger, held."""
        if isinstance(trigger, HITLTrigger):
            self._defer_held(trigger.serialize()[1], mode="wait", timeout=timeout)
        super().defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)

    def _defer_held(self, hitl: dict[str, Any], *, mode: str, timeout: Any = None) -> NoReturn:
        from airflow_provider_buddy.triggers.hitl import HeldHITLTrigger

        trigger = HeldHITLTrigger(hitl=hitl, mode=mode, resume_not_before=time.time() + read_float(RESUME_HOLD))
        super().defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """The answer: branch as the standard gate does; none recorded for a retry: ask now."""
        from airflow_provider_buddy.triggers.hitl import ASK

        if event.get("buddy_gate") == ASK:
            return self._ask(context)
        return super().execute_complete(context=context, event=event)
