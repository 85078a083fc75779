"""A person's answer to a Buddy approval gate, applied in Buddy once: written once as steps of API calls, so the
worker (a live answer) and the triggerer (an answer recorded before Airflow failed the try) apply it the same way.

Applying is idempotent: it reads the execution first and only sends the operation the wait takes (APPLY,
APPLY_VARIABLES, SET_VARIABLES or APPROVE_VT: :func:`~airflow_provider_buddy.models.buddy_status.approve_operations`)
to a wait that is still there and that the answer is about (the action the request asked about, when known), and CANCEL to an
execution still going; a 4xx to an APPLY means someone answered in Buddy meanwhile. Nothing is sent twice.

Which action a request asked about is remembered across the gate's tries in Airflow 3.3's task state store
(``context["task_state_store"]``, kept for the task instance whatever its try); without one (Airflow 3.1 and 3.2,
where the triggerer applies the answer of the try that asked) the action waiting now is answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from airflow_provider_buddy.exceptions import BuddyApiError, BuddyError
from airflow_provider_buddy.models.status import WaitKind
from airflow_provider_buddy.utils.buddy_waiting import describe_execution

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks._base import Steps
    from airflow_provider_buddy.hooks._buddy_api import BuddyApi
    from airflow_provider_buddy.models.buddy import ActionExecution, Execution

DECISION_KEY = "buddy_decision"
"""The XCom the gate records its decision under."""


class GateDecision(TypedDict):
    """
    What the gate decided and did (XCom :data:`DECISION_KEY`).

    :param decision: ``approved``, ``rejected`` or ``answered_in_buddy``.
    :param execution_id: the execution.
    :param html_url: its page in Buddy.
    :param operation: what was sent (``APPLY``, ``APPLY_VARIABLES``, ``SET_VARIABLES``, ``APPROVE_VT``, ``CANCEL``), or None
        when nothing was.
    :param responded_by: who answered in Airflow.
    :param responded_at: when (ISO 8601).
    :param variables: the keys of the variables answered (never their values).
    :param note: what happened, for people.
    """

    decision: str
    execution_id: int
    html_url: str | None
    operation: str | None
    responded_by: Any
    responded_at: str | None
    variables: list[str]
    note: str


def decision_of(execution: Execution, decision: str, operation: str | None, answer: Mapping[str, Any], note: str) -> GateDecision:
    """The record of a decision about ``execution``."""
    at = answer.get("responded_at")
    return GateDecision(
        decision=decision,
        execution_id=execution.id,
        html_url=execution.html_url,
        operation=operation,
        responded_by=answer.get("responded_by_user"),
        responded_at=at.isoformat() if isinstance(at, datetime) else at,
        variables=sorted(answer.get("params_input") or {}),
        note=note,
    )


def answers_for(waiting: ActionExecution | None, params_input: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The variables to send for a "pass arguments" wait: the form's values, keeping each variable's encryption."""
    asked = {v.key: v for v in (waiting.passed_variables or [])} if waiting is not None else {}
    keys = list(asked) or list(params_input)
    answers = []
    for key in keys:
        value = params_input.get(key, asked[key].value if key in asked else None)
        answers.append({"key": key, "value": "" if value is None else str(value), "encrypted": bool(key in asked and asked[key].encrypted)})
    return answers


ASKED_KEY = "buddy_gate_asked"


def remember_asked(context: Any, generation: int, execution: Execution) -> None:
    """Record which action this generation of the gate asked about (Airflow 3.3's task state store; else nothing)."""
    store = context.get("task_state_store")
    if store is None:
        return
    import airflow.sdk

    waiting = execution.waiting_action
    asked = {
        "generation": generation,
        "execution_id": execution.id,
        "action_execution_id": waiting.action_execution_id if waiting is not None else None,
    }
    store.set(ASKED_KEY, asked, retention=getattr(airflow.sdk, "NEVER_EXPIRE", None))  # kept however long the answer takes


def asked_action(context: Any, generation: int) -> str | None:
    """The action this generation of the gate asked about, when Airflow kept it (see :func:`remember_asked`)."""
    store = context.get("task_state_store")
    asked = store.get(ASKED_KEY) if store is not None else None
    if isinstance(asked, dict) and asked.get("generation") == generation:
        value = asked.get("action_execution_id")
        return str(value) if value is not None else None
    return None


def apply_answer(
    api: BuddyApi,
    workspace: str | None,
    project_name: str,
    pipeline_id: int,
    execution_id: int,
    approved: bool,
    answer: Mapping[str, Any],
    asked: str | None = None,
) -> Steps[GateDecision]:
    """
    Apply a person's answer (``chosen_options``, ``params_input``, ``responded_by_user``, ``responded_at``) to the
    execution, once (see the module's docstring); run with a hook's ``run_api`` or ``arun_api``.

    :param asked: the action execution the request asked about, when known: an approval is sent to it only.
    """
    execution: Execution = yield api.get_execution(workspace, project_name, pipeline_id, execution_id)
    ref = describe_execution(execution)
    if not approved:
        if execution.is_finished:
            return decision_of(execution, "rejected", None, answer, f"{ref} had already ended ({execution.status}); nothing to cancel")
        try:
            yield api.cancel_execution(workspace, project_name, pipeline_id, execution_id)
        except BuddyError as exc:
            raise BuddyApiError(f"Rejected in Airflow, but cancelling {ref} in Buddy failed: {exc}") from None
        return decision_of(execution, "rejected", "CANCEL", answer, f"Rejected: cancelled {ref} in Buddy")
    waiting = execution.waiting_action
    if execution.waits_for is None:
        note = f"{ref} no longer waits (status {execution.status}): it was answered in Buddy meanwhile; not applying again"
        return decision_of(execution, "approved", None, answer, note)
    if asked is not None and waiting is not None and waiting.action_execution_id != asked:
        note = f"{ref} waits at another step ({waiting.name}) than the one approved in Airflow; not applying that approval to it"
        return decision_of(execution, "approved", None, answer, note)
    from airflow_provider_buddy.hooks.buddy import answer_wait_steps

    variables = answers_for(waiting, answer.get("params_input") or {}) if execution.waits_for is WaitKind.VARIABLES else None
    action_id = waiting.action_execution_id if waiting is not None else None
    try:  # the operation is the one the wait takes (APPLY, APPLY_VARIABLES, SET_VARIABLES, APPROVE_VT)
        sent = yield from answer_wait_steps(
            api, workspace, project_name, pipeline_id, execution_id, execution.waiting_status, _variables(variables), action_id
        )
    except BuddyApiError as exc:
        note = f"Buddy did not take the approval of {ref} ({exc}); it was probably answered in Buddy meanwhile"
        return decision_of(execution, "approved", None, answer, note)
    return decision_of(execution, "approved", sent.operation, answer, f"Approved {ref} in Buddy ({sent.operation})")


def _variables(answers: list[dict[str, Any]] | None) -> Any:
    from airflow_provider_buddy.models.buddy import variables_from

    return variables_from(answers) or None
