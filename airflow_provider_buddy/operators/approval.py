"""``BuddyApprovalOperator``: a Buddy approval gate answered through Airflow's human-in-the-loop UI.

Built on Airflow's own :class:`~airflow.providers.standard.operators.hitl.ApprovalOperator`: the
request appears in Airflow's "Required actions" view; Approve sends ``APPLY`` (or ``APPLY_VARIABLES``
with the form's answers) to the waiting Buddy action, Reject cancels the execution and skips the
downstream tasks, and the decision is recorded on both sides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_buddy.exceptions import BuddyApiError, BuddyError
from airflow_provider_buddy.links import EXECUTION_ID_KEY, BuddyExecutionLink
from airflow_provider_buddy.models.status import WaitKind
from airflow_provider_buddy.utils.arguments import BUDDY_DEFAULT_CONN_ID, Check, positive_int
from airflow_provider_buddy.utils.buddy_target import EXECUTION_CHECKS, BuddyTargetMixin
from airflow_provider_buddy.utils.buddy_waiting import describe_execution

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_buddy.models.buddy import Execution

DECISION_KEY = "buddy_decision"
_SUBJECT_PLACEHOLDER = "Buddy approval"


class BuddyApprovalOperator(BuddyTargetMixin, ApprovalOperator):
    """
    Asks a person in Airflow to approve or reject a Buddy execution that waits for approval (or for
    variables, shown as a form pre-filled from the waiting action's variables).

    Before asking it checks that the execution really waits: if someone already answered in Buddy
    it says so and succeeds without asking; if the execution ended, it fails with its status. If the
    answer arrives in Buddy while Airflow is still asking, Airflow's answer is not applied again.
    The decision (who, when, what was sent) goes to XCom ``buddy_decision``.

    :param project_name: the project's name id (templated).
    :param pipeline_id: the pipeline's int id, identifier or name (templated).
    :param execution_id: the waiting execution (templated; ``deploy.output`` of the run operator before it works).
    :param workspace: overrides the connection's workspace (templated).
    :param buddy_conn_id: the Airflow connection.
    :param subject: the request's headline (templated); by default it names the pipeline and execution.
    :param body: the request's text (templated, Markdown); by default what it waits for, who started
        it and the link.
    :param assigned_users: who may answer (Airflow's HITL users).
    :param notifiers: notifiers called when the request is made.
    :param response_timeout: how long to wait for an answer (then ``defaults`` apply).
    :param defaults: the option taken on timeout (``"Approve"`` or ``"Reject"``).
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
        super().__init__(subject=subject or _SUBJECT_PLACEHOLDER, body=body, **kwargs)
        self._custom_subject = subject is not None
        self._custom_body = body is not None
        self.set_target(project_name, pipeline_id, workspace, buddy_conn_id)
        self.execution_id = execution_id
        self.check_given_arguments("execution_id")

    def _current(self, pipeline_id: int) -> Execution:
        return self.hook.get_execution(
            self.project_name, pipeline_id, positive_int(self.execution_id, "execution_id"), workspace=self.workspace
        )

    # ---- asking ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Check the execution waits for a person, then put the request into Airflow's UI."""
        self.check_arguments()
        pipeline_id = self.resolve_pipeline_id()
        execution = self._current(pipeline_id)
        context["ti"].xcom_push(key=EXECUTION_ID_KEY, value=execution.id)
        BuddyExecutionLink.persist(context, execution.html_url)
        if execution.is_finished:
            raise BuddyApiError(f"{describe_execution(execution)} has already ended ({execution.status}); there is nothing to approve")
        kind = execution.waits_for
        if kind is None:
            self.log.info(
                "%s no longer waits for a person (status %s): answered in Buddy already; not asking",
                describe_execution(execution),
                execution.status,
            )
            decision = self._decision(execution, "answered_in_buddy", None, None, None, {})
            context["ti"].xcom_push(key=DECISION_KEY, value=decision)
            return decision
        if kind is WaitKind.VISUAL_TEST:
            raise BuddyApiError(f"{describe_execution(execution)} waits for a visual-test review, which only Buddy's UI can answer")
        waiting = execution.waiting_action
        if not self._custom_subject:
            self.subject = f"Approve {_pipeline_label(execution)} — Buddy execution {execution.id}?"
        if not self._custom_body:
            self.body = _request_body(execution, kind)
        if kind is WaitKind.VARIABLES and waiting is not None:
            self.params = _variables_form(waiting)
        self.log.info("Asking in Airflow: %s", self.subject)
        return super().execute(context)

    # ---- the answer --------------------------------------------------------------------------------
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Apply the person's answer in Buddy (once), record it, then let ApprovalOperator skip on Reject."""
        chosen = list(event.get("chosen_options") or [])
        if "error" in event or not chosen:
            return super().execute_complete(context=context, event=event)
        self.validate_chosen_options(chosen)
        params_input = dict(event.get("params_input") or {})
        pipeline_id = self.resolve_pipeline_id()
        execution = self._current(pipeline_id)
        approved = chosen[0] == self.APPROVE
        operation, note = self._apply(pipeline_id, execution, approved, params_input)
        decision = self._decision(
            execution,
            "approved" if approved else "rejected",
            operation,
            event.get("responded_by_user"),
            event.get("responded_at"),
            params_input,
        )
        decision["note"] = note
        context["ti"].xcom_push(key=DECISION_KEY, value=decision)
        return super().execute_complete(context=context, event=event)

    def _apply(self, pipeline_id: int, execution: Execution, approved: bool, params_input: dict[str, Any]) -> tuple[str | None, str]:
        ref = describe_execution(execution)
        if approved:
            if execution.waits_for is None:
                note = f"{ref} no longer waits (status {execution.status}): it was answered in Buddy meanwhile; not applying again"
                self.log.info("%s", note)
                return None, note
            waiting = execution.waiting_action
            variables = _answers(waiting, params_input) if execution.waits_for is WaitKind.VARIABLES else None
            operation = "APPLY_VARIABLES" if variables else "APPLY"
            try:
                self.hook.approve_execution(
                    self.project_name,
                    pipeline_id,
                    execution.id,
                    variables=variables,
                    action_execution_id=waiting.action_execution_id if waiting is not None else None,
                    workspace=self.workspace,
                )
            except BuddyApiError as exc:
                note = f"Buddy did not take the approval of {ref} ({exc}); it was probably answered in Buddy meanwhile"
                self.log.warning("%s", note)
                return None, note
            note = f"Approved {ref} in Buddy ({operation})"
            self.log.info("%s", note)
            return operation, note
        if execution.is_finished:
            note = f"{ref} had already ended ({execution.status}); nothing to cancel"
            self.log.info("%s", note)
            return None, note
        try:
            self.hook.cancel_execution(self.project_name, pipeline_id, execution.id, workspace=self.workspace)
        except BuddyError as exc:
            raise BuddyApiError(f"Rejected in Airflow, but cancelling {ref} in Buddy failed: {exc}") from None
        note = f"Rejected: cancelled {ref} in Buddy"
        self.log.info("%s", note)
        return "CANCEL", note

    @staticmethod
    def _decision(
        execution: Execution, decision: str, operation: str | None, by: Any, at: Any, params_input: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "decision": decision,
            "execution_id": execution.id,
            "html_url": execution.html_url,
            "operation": operation,
            "responded_by": by,
            "responded_at": at.isoformat() if isinstance(at, datetime) else at,
            "variables": sorted(params_input),
        }


def _pipeline_label(execution: Execution) -> str:
    pipeline = execution.pipeline
    if pipeline is None:
        return "the Buddy pipeline"
    return f"'{pipeline.name or pipeline.identifier or pipeline.id}'"


def _request_body(execution: Execution, kind: WaitKind) -> str:
    waiting = execution.waiting_action
    action = f" at action **{waiting.name}**" if waiting is not None else ""
    asked = "your approval" if kind is WaitKind.APPROVAL else "values for its variables (fill in the form)"
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
    from airflow.sdk import Param
    from airflow.sdk.definitions.param import ParamsDict

    form: dict[str, Any] = {}
    for variable in waiting.passed_variables or []:
        default = "" if variable.encrypted else (variable.value or "")
        form[variable.key] = Param(default, type="string", description=variable.description or f"Value for {variable.key}")
    return ParamsDict(form)


def _answers(waiting: Any, params_input: dict[str, Any]) -> list[dict[str, Any]]:
    asked = {v.key: v for v in (waiting.passed_variables or [])} if waiting is not None else {}
    keys = list(asked) or list(params_input)
    answers = []
    for key in keys:
        value = params_input.get(key, asked[key].value if key in asked else None)
        answers.append({"key": key, "value": "" if value is None else str(value), "encrypted": bool(key in asked and asked[key].encrypted)})
    return answers
