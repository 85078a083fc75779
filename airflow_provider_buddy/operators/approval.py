"""``BuddyApprovalOperator``: a Buddy approval gate answered through Airflow's human-in-the-loop UI.

Built on Airflow's own :class:`~airflow.providers.standard.operators.hitl.ApprovalOperator`: the
request appears in Airflow's "Required actions" view; Approve sends the operation the wait takes (``APPLY``;
``APPLY_VARIABLES`` or ``SET_VARIABLES`` with the form's answers; ``APPROVE_VT`` for a visual-test session) to the
waiting Buddy action, Reject cancels the execution and skips the
downstream tasks, and the decision is recorded on both sides.

Airflow can fail a gate answered within seconds of asking (its defer race, apache/airflow#67287, #72716), and on 3.3
an answer given while the task parks can leave it parked for good. The gate is built so that the answer is still
applied, once: it waits in the triggerer (:class:`~airflow_provider_buddy.triggers.approval.BuddyApprovalTrigger`),
which applies an answer there (no worker resumes, so the race cannot hit it), including one given before it
started. Airflow 3.3 resumes the worker itself when a person answers while the trigger waits: the worker applies it,
and if Airflow fails that try, the retry reads the answer Airflow recorded and applies it in the triggerer instead
of asking again. Hence the gate's default ``retries=1``. Under ``dag.test()``, where no triggerer can read answers,
the gate waits as Airflow's own does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_buddy.exceptions import BuddyApiError
from airflow_provider_buddy.links import EXECUTION_ID_KEY, BuddyExecutionLink
from airflow_provider_buddy.models.status import WaitKind
from airflow_provider_buddy.operators.hitl import GATE_RETRIES, GATE_RETRY_DELAY, HeldGate, hitl_kwargs
from airflow_provider_buddy.utils.arguments import BUDDY_DEFAULT_CONN_ID, Check, positive_int
from airflow_provider_buddy.utils.buddy_gate import (
    DECISION_KEY,
    GateDecision,
    apply_answer,
    asked_action,
    decision_of,
    remember_asked,
)
from airflow_provider_buddy.utils.buddy_target import EXECUTION_CHECKS, BuddyTargetMixin
from airflow_provider_buddy.utils.buddy_waiting import describe_execution
from airflow_provider_buddy.utils.deferral import ended_in_triggerer
from airflow_provider_buddy.utils.reattach import first_try_of_generation, try_number_of

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger  # no airflow.sdk / common.compat alias in Airflow 3.1-3.3

    from airflow_provider_buddy.models.buddy import Execution

__all__ = ["DECISION_KEY", "BuddyApprovalOperator"]

_SUBJECT_PLACEHOLDER = "Buddy approval"


class BuddyApprovalOperator(BuddyTargetMixin, HeldGate, ApprovalOperator):
    """
    Asks a person in Airflow to approve or reject a Buddy execution that waits for approval (or for
    variables, shown as a form pre-filled from the waiting action's variables).

    Before asking it checks that the execution really waits: if someone already answered in Buddy
    it says so and succeeds without asking; if the execution ended, it fails with its status. If the
    answer arrives in Buddy while Airflow is still asking, Airflow's answer is not applied again, and an
    answer older than the step now waiting is not applied to it. The decision (who, when, what was sent)
    goes to XCom ``buddy_decision``. A retry of the gate (after Airflow failed a try) applies the answer
    Airflow recorded for it instead of asking again.

    :param project_name: the project's name id (templated).
    :param pipeline_id: the pipeline's int id, identifier or name (templated).
    :param execution_id: the waiting execution (templated; ``staging.output`` works).
    :param workspace: overrides the connection's workspace (templated).
    :param buddy_conn_id: the Airflow connection.
    :param subject: the request's headline (templated); by default it names the pipeline and execution.
    :param body: the request's text (templated, Markdown); by default what it waits for, who started
        it and the link.
    :param assigned_users: who may answer (Airflow's HITL users).
    :param notifiers: notifiers called when the request is made.
    :param response_timeout: how long to wait for an answer (then ``defaults`` apply).
    :param defaults: the option taken on timeout (``"Approve"`` or ``"Reject"``).
    :param retries: default 1 (see the module's docstring), ``retry_delay`` default 30 s.
    """

    template_fields: Sequence[str] = ("subject", "body", "project_name", "pipeline_id", "execution_id", "workspace")
    operator_extra_links = (BuddyExecutionLink(),)
    ui_color = "#1a86fd"
    argument_checks: ClassVar[Mapping[str, Check]] = EXECUTION_CHECKS

    def __init__(
        self,
        *,
        project_name: str,
        pipeline_id: int | str,
        execution_id: int | str,
        workspace: str | None = None,
        buddy_conn_id: str = BUDDY_DEFAULT_CONN_ID,
        subject: str | None = None,
        body: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", GATE_RETRIES)
        kwargs.setdefault("retry_delay", GATE_RETRY_DELAY)
        super().__init__(subject=subject or _SUBJECT_PLACEHOLDER, body=body, **kwargs)
        self._custom_subject = subject is not None
        self._custom_body = body is not None
        self.set_target(project_name, pipeline_id, workspace, buddy_conn_id)
        self.execution_id = execution_id
        self.check_given_arguments("execution_id")
        self._gate: tuple[int, int] | None = None
        self._asked: str | None = None

    def _current(self, pipeline_id: int) -> Execution:
        return self.hook.get_execution(
            self.project_name, pipeline_id, positive_int(self.execution_id, "execution_id"), workspace=self.workspace
        )

    # ---- asking ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Check the execution waits for a person, then put the request into Airflow's UI — or, on a retry, apply the
        answer an earlier try got (whatever Buddy shows now: that try may have applied it already)."""
        self.check_arguments()
        pipeline_id = self.resolve_pipeline_id()
        execution = self._current(pipeline_id)
        context["ti"].xcom_push(key=EXECUTION_ID_KEY, value=execution.id)
        BuddyExecutionLink.persist(context, execution.html_url)
        self._gate = (pipeline_id, execution.id)
        ti = context["ti"]
        generation = first_try_of_generation(ti, self.retries)
        if try_number_of(ti) > generation:
            # asking again would erase the answer Airflow recorded for an earlier try: read it in the triggerer
            self.log.info("An earlier try of this gate asked already: applying the answer Airflow recorded for it, if any")
            if execution.waits_for is not None:
                self._prepare_request(execution, execution.waits_for)
            self._asked = asked_action(context, generation)
            self._defer_held(hitl_kwargs(self, context), mode="recorded")
        return self._ask_if_waiting(context, execution, generation)

    def _ask_if_waiting(self, context: Context, execution: Execution, generation: int) -> Any:
        """Ask in Airflow when the execution waits for a person; succeed at once when it was answered in Buddy."""
        if execution.is_finished:
            raise BuddyApiError(f"{describe_execution(execution)} has already ended ({execution.status}); there is nothing to approve")
        kind = execution.waits_for
        if kind is None:
            note = f"{describe_execution(execution)} no longer waits for a person (status {execution.status}): answered in Buddy already"
            self.log.info("%s; not asking", note)
            decision = decision_of(execution, "answered_in_buddy", None, {}, note)
            context["ti"].xcom_push(key=DECISION_KEY, value=decision)
            return decision
        self._prepare_request(execution, kind)
        remember_asked(context, generation, execution)
        waiting = execution.waiting_action
        self._asked = waiting.action_execution_id if waiting is not None else None
        self.log.info("Asking in Airflow: %s", self.subject)
        return self._ask(context)

    def _prepare_request(self, execution: Execution, kind: WaitKind) -> None:
        waiting = execution.waiting_action
        if not self._custom_subject:
            self.subject = f"Approve {_pipeline_label(execution)} — Buddy execution {execution.id}?"
        if not self._custom_body:
            self.body = _request_body(execution, kind)
        if kind is WaitKind.VARIABLES and waiting is not None:
            self.params = _variables_form(waiting)

    def holds_gate(self) -> bool:
        """The standard trigger is swapped for the gate's once the execution is known (always, after ``execute``)."""
        return self._gate is not None

    def gate_trigger(self, hitl: dict[str, Any], mode: str, resume_not_before: float) -> BaseTrigger:
        """:class:`~airflow_provider_buddy.triggers.approval.BuddyApprovalTrigger`: the answer, applied in Buddy there."""
        from airflow_provider_buddy.triggers.approval import BuddyApprovalTrigger

        assert self._gate is not None
        pipeline_id, execution_id = self._gate
        return BuddyApprovalTrigger(
            hitl=hitl,
            buddy_conn_id=self.buddy_conn_id,
            project_name=self.project_name,
            pipeline_id=pipeline_id,
            execution_id=execution_id,
            workspace=self.workspace,
            mode=mode,
            asked_action_execution_id=self._asked,
            resume_not_before=resume_not_before,
        )

    # ---- the answer --------------------------------------------------------------------------------
    def execute_complete(self, context: Context, event: Any) -> Any:
        """Apply the person's answer in Buddy (once), record it, then let ApprovalOperator skip on Reject."""
        if ended_in_triggerer(event):  # dag.test(): the trigger applied an Approve and ended the task
            execution = self._current(self.resolve_pipeline_id())
            ended = decision_of(execution, "approved", None, {}, f"Approved {describe_execution(execution)} (applied by the triggerer)")
            context["ti"].xcom_push(key=DECISION_KEY, value=ended)
            return ended
        if event.get("buddy_gate") == "ask":  # an earlier try never got an answer: ask now
            pipeline_id = self.resolve_pipeline_id()
            execution = self._current(pipeline_id)
            self._gate = (pipeline_id, execution.id)
            return self._ask_if_waiting(context, execution, first_try_of_generation(context["ti"], self.retries))
        chosen = list(event.get("chosen_options") or [])
        if "error" in event or not chosen:
            return super().execute_complete(context=context, event=event)
        self.validate_chosen_options(chosen)
        decision: GateDecision | None = event.get("buddy_applied")
        if decision is None:  # Airflow 3.3: a live answer resumes the worker, which applies it
            pipeline_id = self.resolve_pipeline_id()
            execution_id = positive_int(self.execution_id, "execution_id")
            approved = chosen[0] == self.APPROVE
            asked = asked_action(context, first_try_of_generation(context["ti"], self.retries))
            decision = self.hook.run_api(
                lambda api: apply_answer(api, self.workspace, self.project_name, pipeline_id, execution_id, approved, event, asked)
            )
        self.log.info("%s", decision["note"])
        context["ti"].xcom_push(key=DECISION_KEY, value=decision)
        return super().execute_complete(context=context, event=event)


def _pipeline_label(execution: Execution) -> str:
    pipeline = execution.pipeline
    if pipeline is None:
        return "the Buddy pipeline"
    return f"'{pipeline.name or pipeline.identifier or pipeline.id}'"


def _request_body(execution: Execution, kind: WaitKind) -> str:
    waiting = execution.waiting_action
    action = f" at action **{waiting.name}**" if waiting is not None else ""
    asked = {
        WaitKind.VARIABLES: "values for its variables (fill in the form)",
        WaitKind.VISUAL_TEST: "approval of its visual-test session (review it in Buddy first)",
    }.get(kind, "your approval")
    creator = execution.creator.name if execution.creator is not None and execution.creator.name else "someone"
    lines = [
        f"Buddy execution **{execution.id}** of pipeline {_pipeline_label(execution)} waits for {asked}{action}.",
        "",
        f"- Started by: {creator}",
    ]
    if execution.branch is not None and execution.branch.name:
        lines.append(f"- Branch: `{execution.branch.name}`")
    if execution.to_revision is not None and execution.to_revision.revision:
        lines.append(f"- Revision: `{execution.to_revision.revision[:12]}`")
    if execution.comment:
        lines.append(f"- Comment: {execution.comment}")
    if execution.html_url:
        lines.append(f"- Open in Buddy: {execution.html_url}")
    lines += ["", "**Approve** continues the run in Buddy; **Reject** cancels it and skips the tasks after this one."]
    return "\n".join(lines)


def _variables_form(waiting: Any) -> Any:
    from airflow.sdk import Param, ParamsDict  # type: ignore[attr-defined,unused-ignore]  # public, missing in 3.3.2's sdk stub

    form: dict[str, Any] = {}
    for variable in waiting.passed_variables or []:
        default = "" if variable.encrypted else (variable.value or "")
        form[variable.key] = Param(default, type="string", description=variable.description or f"Value for {variable.key}")
    return ParamsDict(form)
