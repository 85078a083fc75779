"""``BuddyExecutionSensor``: wait on a Buddy execution, in poke or deferrable mode."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_buddy.links import BuddyExecutionLink
from airflow_provider_buddy.utils.arguments import (
    BUDDY_DEFAULT_CONN_ID,
    Check,
    check_bool,
    default_deferrable,
    non_negative_int,
    positive_int,
    resolved_later,
)
from airflow_provider_buddy.utils.backoff import look_or_wait_out
from airflow_provider_buddy.utils.buddy_target import EXECUTION_CHECKS, BuddyTargetMixin
from airflow_provider_buddy.utils.buddy_task_waiting import BuddyWaitingMixin, resumed_pipeline_id, wait_error
from airflow_provider_buddy.utils.buddy_variables import approval_variables_of, check_variables, mask_variables
from airflow_provider_buddy.utils.buddy_waiting import DEFAULT_LOG_TAIL
from airflow_provider_buddy.utils.deferral import ended_in_triggerer, sensor_start_trigger_args, startable_in_triggerer
from airflow_provider_buddy.utils.sensor_timeout import raise_if_timed_out
from airflow_provider_buddy.utils.waiting import ApprovalPolicy

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context
    from airflow.triggers.base import StartTriggerArgs  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3

    from airflow_provider_buddy.utils.buddy_waiting import BuddyWaitEvent


class BuddyExecutionSensor(BuddyTargetMixin, BuddyWaitingMixin, BaseSensorOperator):
    """
    Waits until a Buddy execution ends — or stops for a person, per ``on_approval``.

    Returns (XCom) ``{"execution_id", "status", "html_url", "outputted_variables"}`` (plus
    ``waits_for``, ``waiting_action_execution_id``, ``waiting_action_name`` when it ends at a gate).
    A FAILED execution fails the task with the link, the failed action, its error and the last
    ``log_tail_lines`` lines of its log; TERMINATED fails as cancelled; SKIPPED fails unless
    ``skipped_is_success``. When ``timeout`` passes the task fails as Airflow's own sensors do
    (``AirflowSensorTimeout``: not retried), in poke and deferrable mode alike.

    Every templated argument also takes a value Airflow resolves when the task runs (``run.output``, a
    TaskFlow result; the dependency is set for you): it is checked once resolved, before anything is sent.

    :param project_name: the project's name id (templated).
    :param pipeline_id: the pipeline's int id, identifier or name (templated).
    :param execution_id: the execution to wait on (templated; ``run.output`` of a run operator works).
    :param workspace: overrides the connection's workspace (templated).
    :param buddy_conn_id: the Airflow connection.
    :param on_approval: ``wait``, ``succeed``, ``fail`` or ``approve`` — what to do when the execution
        stops for a person.
    :param approval_variables: answers for a "pass arguments" prompt with ``on_approval="approve"``
        (dict or list of ``{key, value, encrypted}``; templated).
    :param skipped_is_success: read a SKIPPED execution as success.
    :param log_tail_lines: how many log lines of a failed action to show.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param start_from_trigger: when deferrable and no argument pulls an XCom, start the wait straight in the
        triggerer (Airflow 3.2+): no worker slot at all, and a good end ends the task there too (Airflow 3.1 runs it on
        a worker first). Templates such as ``{{ params.execution_id }}`` are rendered there; an XComArg, a ``@dag``
        parameter or a template using ``xcom_pull`` (Airflow 3.3's triggerer cannot pull XComs) starts the task on a
        worker, which resolves and checks it, then defers; so do encrypted approval answers.
    """

    wait_returns = "summary"

    template_fields: Sequence[str] = ("project_name", "pipeline_id", "execution_id", "workspace", "approval_variables")
    operator_extra_links = (BuddyExecutionLink(),)
    ui_color = "#1a86fd"
    argument_checks: ClassVar[Mapping[str, Check]] = {**EXECUTION_CHECKS, "approval_variables": check_variables}

    _failed_looks = 0  # failed looks in a row in poke mode (transient trouble)

    def __init__(
        self,
        *,
        project_name: str,
        pipeline_id: int | str,
        execution_id: int | str,
        workspace: str | None = None,
        buddy_conn_id: str = BUDDY_DEFAULT_CONN_ID,
        on_approval: str = "wait",
        approval_variables: Any = None,
        skipped_is_success: bool = False,
        log_tail_lines: int = DEFAULT_LOG_TAIL,
        deferrable: bool | None = None,
        start_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30.0)
        super().__init__(**kwargs)
        self.execution_id = execution_id
        self.on_approval = ApprovalPolicy.parse(on_approval).value
        self.approval_variables = approval_variables
        self.skipped_is_success = skipped_is_success
        self.log_tail_lines = non_negative_int(log_tail_lines, "log_tail_lines")
        self.cancel_on_kill = False
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        check_bool(skipped_is_success, "skipped_is_success")
        check_bool(deferrable, "deferrable", optional=True)
        self.set_target(project_name, pipeline_id, workspace, buddy_conn_id)
        self.check_given_arguments("execution_id", "approval_variables")
        check_bool(start_from_trigger, "start_from_trigger")
        self._approved: set[str] = set()
        startable = startable_in_triggerer(project_name, pipeline_id, execution_id, workspace, approval_variables)
        if start_from_trigger and self.deferrable and startable and _plain_answers(approval_variables):
            self.start_from_trigger = True
            self.start_trigger_args = self._start_in_triggerer()

    def _start_in_triggerer(self) -> StartTriggerArgs:
        """Start the wait on the execution in the triggerer (:func:`~airflow_provider_buddy.utils.deferral.sensor_start_trigger_args`)."""
        return sensor_start_trigger_args(
            self,
            "airflow_provider_buddy.triggers.buddy.BuddyExecutionTrigger",
            {
                "buddy_conn_id": self.buddy_conn_id,
                "project_name": self.project_name,
                "pipeline_id": self.pipeline_id,
                "execution_id": self.execution_id,
                "workspace": self.workspace,
                "poll_interval": float(self.poke_interval),
                "on_approval": self.on_approval,
                "approval_variables": self.approval_variables,
                "skipped_is_success": self.skipped_is_success,
                "log_tail": self.log_tail_lines,
            },
        )

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render, then mask the rendered encrypted answers before Airflow records the rendered fields."""
        super().render_template_fields(context, jinja_env)
        mask_variables(self.approval_variables)

    def _ids(self) -> tuple[int, int]:
        return self.resolve_pipeline_id(), positive_int(self.execution_id, "execution_id")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One look at the execution (sync hook); approves when the policy says so."""
        pipeline_id, execution_id = self._ids()
        payload, self._failed_looks, _ = look_or_wait_out(
            self.log,
            lambda: self.poll_once(pipeline_id, execution_id, self._approved),
            self._failed_looks,
            f"Buddy execution {execution_id}",
        )
        if payload is None:
            return False  # still going, or Buddy not answering well: the run goes on, so does the wait
        BuddyExecutionLink.persist(context, payload.get("html_url"))
        return PokeReturnValue(is_done=True, xcom_value=self.finish_wait(payload))

    def execute(self, context: Context) -> Any:
        """Poke mode: Airflow's loop. Deferrable: look once, then hand the wait to the triggerer."""
        self.check_arguments()  # rendered and resolved values are checked before anything is sent
        if not self.deferrable:
            return super().execute(context)
        pipeline_id, execution_id = self._ids()
        # transient trouble on this first look: the triggerer looks again
        payload, _, _ = look_or_wait_out(
            self.log, lambda: self.poll_once(pipeline_id, execution_id, self._approved), 0, f"Buddy execution {execution_id}"
        )
        if payload is not None:
            BuddyExecutionLink.persist(context, payload.get("html_url"))
            return self.finish_wait(payload)
        BuddyExecutionLink.persist(context, self.last_seen.html_url if self.last_seen is not None else None)
        end_time = time.time() + float(self.timeout) if self.timeout else None
        self.defer_wait(pipeline_id, execution_id, float(self.poke_interval), end_time=end_time, approved=sorted(self._approved))

    def execute_complete(self, context: Context, event: BuddyWaitEvent, **_: Any) -> Any:
        """Called when the trigger fires: the same results as poke mode (a timeout fails as Airflow's sensors do)."""
        if ended_in_triggerer(event):
            event = self.event_of_ended_task(*self._ids())
        BuddyExecutionLink.persist(context, event.get("html_url"))
        raise_if_timed_out(event, self.timeout, wait_error)
        pipeline_id = resumed_pipeline_id(event, lambda: self._ids()[0])
        return self.resume_wait(event, pipeline_id, float(self.poke_interval))


def _plain_answers(approval_variables: Any) -> bool:
    """True when the approval answers may go into a trigger started by Airflow: none, or literal and not encrypted
    (a template is rendered in the triggerer only as text; secrets never go into a trigger)."""
    if approval_variables is None:
        return True
    if resolved_later(approval_variables):
        return False
    return not any(v.encrypted for v in approval_variables_of(approval_variables))
