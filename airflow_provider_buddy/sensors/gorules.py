"""``GoRulesRunSensor``: wait on a GoRules BRMS deployment workflow run, in poke or deferrable mode."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_buddy.hooks.gorules import GoRulesHook
from airflow_provider_buddy.links import GoRulesRunLink
from airflow_provider_buddy.utils.arguments import ArgumentChecks, Check, check_bool, default_deferrable, non_empty
from airflow_provider_buddy.utils.backoff import look_or_wait_out
from airflow_provider_buddy.utils.deferral import ended_in_triggerer, sensor_start_trigger_args, startable_in_triggerer
from airflow_provider_buddy.utils.gorules_task_waiting import GoRulesWaitingMixin, run_wait_error
from airflow_provider_buddy.utils.gorules_waiting import gorules_policy
from airflow_provider_buddy.utils.sensor_timeout import raise_if_timed_out

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import StartTriggerArgs  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3

    from airflow_provider_buddy.utils.gorules_waiting import GoRulesWaitEvent


class GoRulesRunSensor(GoRulesWaitingMixin, ArgumentChecks, BaseSensorOperator):
    """
    Waits until a GoRules deployment workflow run is ``completed`` — or waits for a review, per ``on_approval``.

    Returns (XCom) ``{"run_id", "status", "project_id", "release_id", "release", "run_url", "jobs"}``
    (plus ``waiting_environments`` when it ends at a review gate). A ``failure`` or ``cancelled`` run
    fails the task with the run's jobs, environments and reviewers in the message. When ``timeout`` passes
    the task fails as Airflow's own sensors do (``AirflowSensorTimeout``: not retried), in poke and
    deferrable mode alike.

    ``project_id`` and ``run_id`` also take values Airflow resolves when the task runs (``deploy.output``,
    a TaskFlow result; the dependency is set for you): they are checked once resolved.

    :param project_id: the BRMS project's id (templated).
    :param run_id: the run to wait on (templated; ``deploy.output`` of a deploy operator works).
    :param gorules_conn_id: the Airflow connection.
    :param on_approval: what to do when the run waits for a review: ``wait`` for a reviewer in the BRMS,
        ``succeed`` at once (so the DAG can put its own gate next), or ``fail`` naming the environments
        whose review is pending. ``approve`` is refused: the BRMS API has no approve call.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param start_from_trigger: when deferrable and neither id pulls an XCom, start the wait straight in the triggerer
        (Airflow 3.2+): no worker slot at all, and a good end ends the task there too (Airflow 3.1 runs it on a worker
        first). An XComArg, a ``@dag`` parameter or a template using ``xcom_pull`` (Airflow 3.3's triggerer cannot pull
        XComs) starts the task on a worker, which resolves and checks it, then defers.
    """

    wait_returns = "summary"

    template_fields: Sequence[str] = ("project_id", "run_id")
    ui_color = "#3b5bdb"
    argument_checks: ClassVar[Mapping[str, Check]] = {"project_id": non_empty, "run_id": non_empty}
    operator_extra_links = (GoRulesRunLink(),)

    _failed_looks = 0  # failed looks in a row in poke mode (transient trouble)

    def __init__(
        self,
        *,
        project_id: str,
        run_id: str,
        gorules_conn_id: str = GoRulesHook.default_conn_name,
        on_approval: str = "wait",
        deferrable: bool | None = None,
        start_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30.0)
        super().__init__(**kwargs)
        self.project_id = project_id
        self.run_id = run_id
        self.gorules_conn_id = gorules_conn_id
        self.on_approval = gorules_policy(on_approval).value
        self.cancel_on_kill = False
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.check_given_arguments()
        check_bool(start_from_trigger, "start_from_trigger")
        if start_from_trigger and self.deferrable and startable_in_triggerer(project_id, run_id):
            self.start_from_trigger = True
            self.start_trigger_args = self._start_in_triggerer()

    def _start_in_triggerer(self) -> StartTriggerArgs:
        """Start the wait on the run in the triggerer (:func:`~airflow_provider_buddy.utils.deferral.sensor_start_trigger_args`)."""
        return sensor_start_trigger_args(
            self,
            "airflow_provider_buddy.triggers.gorules.GoRulesRunTrigger",
            {
                "gorules_conn_id": self.gorules_conn_id,
                "project_id": self.project_id,
                "run_id": self.run_id,
                "poll_interval": float(self.poke_interval),
                "on_approval": self.on_approval,
            },
        )

    @cached_property
    def hook(self) -> GoRulesHook:
        """The GoRules hook."""
        return GoRulesHook(self.gorules_conn_id)

    def _ids(self) -> tuple[str, str]:
        return non_empty(self.project_id, "project_id"), non_empty(self.run_id, "run_id")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One look at the run (sync hook)."""
        project_id, run_id = self._ids()
        payload, self._failed_looks, _ = look_or_wait_out(
            self.log, lambda: self.poll_once(project_id, run_id), self._failed_looks, f"GoRules run {run_id}"
        )
        if payload is None:
            return False  # still going, or the BRMS not answering well: the run goes on, so does the wait
        return PokeReturnValue(is_done=True, xcom_value=self.finish_wait(payload))

    def execute(self, context: Context) -> Any:
        """Poke mode: Airflow's loop. Deferrable: look once, then hand the wait to the triggerer."""
        self.check_arguments()  # rendered and resolved values are checked before anything is sent
        project_id, run_id = self._ids()
        self.show_run(context, project_id, run_id)
        if not self.deferrable:
            return super().execute(context)
        end_time = time.time() + float(self.timeout) if self.timeout else None
        return self.first_look_or_defer(project_id, run_id, float(self.poke_interval), end_time=end_time)

    def execute_complete(self, context: Context, event: GoRulesWaitEvent, **_: Any) -> Any:
        """Called when the trigger fires: the same results as poke mode (a timeout fails as Airflow's sensors do)."""
        if ended_in_triggerer(event):
            event = self.event_of_ended_task(*self._ids())
        self.show_run(context, *self._ids())
        raise_if_timed_out(event, self.timeout, run_wait_error)
        return self.finish_wait(event)
