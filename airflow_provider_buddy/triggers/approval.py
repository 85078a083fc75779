"""``BuddyApprovalTrigger``: a Buddy approval gate's answer, applied in Buddy from the triggerer.

Airflow records a person's answer to a human-in-the-loop request; only the triggerer can read it back (the
standard provider's :class:`~airflow.providers.standard.triggers.hitl.HITLTrigger` does). This trigger composes
that trigger:

- ``mode="wait"`` (Airflow 3.1 and 3.2, where the gate defers while it asks): wait for the answer as HITLTrigger
  does, then apply it here.
- ``mode="recorded"`` (a retry of the gate, any version): Airflow failed an earlier try of this generation — its
  defer race can fail a gate answered within seconds — so read the answer it recorded and apply it, instead of
  asking again (asking again would erase it). No answer recorded: the task resumes on a worker and asks.

An Approve ends the task right here (no worker resumes, so the race cannot hit it); a Reject cancels the execution,
then resumes the task after the hold so it can skip the tasks after it; errors (a timeout with no default) resume it
as the standard gate would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent  # documented; no sdk/compat alias in 3.1-3.3

from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.triggers._poller import SharedPoller
from airflow_provider_buddy.triggers._task_xcoms import store_task_xcoms
from airflow_provider_buddy.triggers.hitl import ASK, answer_of, check_mode, recorded_answer
from airflow_provider_buddy.utils.buddy_gate import DECISION_KEY, GateDecision, apply_answer
from airflow_provider_buddy.utils.deferral import hold_until

APPROVE = "Approve"


class BuddyApprovalTrigger(BaseTrigger):
    """
    Waits for (``wait``) or reads (``recorded``) the answer to a Buddy approval gate and applies it in Buddy once.

    :param hitl: the standard ``HITLTrigger``'s kwargs for this request (its ``serialize()``).
    :param buddy_conn_id: the Airflow connection (never a token).
    :param project_name: the project's name id.
    :param pipeline_id: the pipeline's numeric id.
    :param execution_id: the execution the gate is about.
    :param workspace: overrides the connection's workspace.
    :param mode: ``wait`` or ``recorded`` (see the module's docstring).
    :param asked_action_execution_id: the action the request asked about, when known: an approval goes to it only.
    :param resume_not_before: epoch seconds: an event that resumes the task on a worker is held until then.
    """

    def __init__(
        self,
        *,
        hitl: dict[str, Any],
        buddy_conn_id: str,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        workspace: str | None = None,
        mode: str = "wait",
        asked_action_execution_id: str | None = None,
        resume_not_before: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.hitl = dict(hitl)
        self.buddy_conn_id = buddy_conn_id
        self.project_name = project_name
        self.pipeline_id = int(pipeline_id)
        self.execution_id = int(execution_id)
        self.workspace = workspace
        self.mode = check_mode(mode)
        self.asked_action_execution_id = asked_action_execution_id
        self.resume_not_before = resume_not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and plain kwargs: the connection id, never a token."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "hitl": self.hitl,
                "buddy_conn_id": self.buddy_conn_id,
                "project_name": self.project_name,
                "pipeline_id": self.pipeline_id,
                "execution_id": self.execution_id,
                "workspace": self.workspace,
                "mode": self.mode,
                "asked_action_execution_id": self.asked_action_execution_id,
                "resume_not_before": self.resume_not_before,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Get the answer, apply it in Buddy, end the task (Approve) or hand it back to the worker."""
        answer = await (answer_of(self.hitl) if self.mode == "wait" else recorded_answer(self.hitl, self.log))
        if answer is None:
            self.log.info("No answer recorded for this gate yet: the task asks again")
            await self._hold()
            yield TriggerEvent({"buddy_gate": ASK})  # type: ignore[no-untyped-call]
            return
        if "error" in answer or not answer.get("chosen_options"):
            await self._hold()
            yield TriggerEvent(answer)  # type: ignore[no-untyped-call]
            return
        approved = answer["chosen_options"][0] == APPROVE
        poller = SharedPoller.for_running_loop()
        async with poller.lease():
            hook: BuddyHook = await poller.shared_hook(BuddyHook, self.buddy_conn_id)
            decision: GateDecision = await hook.arun_api(
                lambda api: apply_answer(
                    api,
                    self.workspace,
                    self.project_name,
                    self.pipeline_id,
                    self.execution_id,
                    approved,
                    answer,
                    self.asked_action_execution_id,
                )
            )
        self.log.info("%s", decision["note"])
        if approved and await store_task_xcoms(self, {"return_value": _json(answer), DECISION_KEY: dict(decision)}):
            yield TaskSuccessEvent()
            return
        await self._hold()
        yield TriggerEvent({**answer, "buddy_applied": dict(decision)})  # type: ignore[no-untyped-call]

    async def _hold(self) -> None:
        await hold_until(self.log, self.resume_not_before)


def _json(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer as the standard gate returns it, with its time as text (a task-end event's XComs are JSON)."""
    at = answer.get("responded_at")
    return {**answer, "responded_at": at.isoformat() if isinstance(at, datetime) else at}
