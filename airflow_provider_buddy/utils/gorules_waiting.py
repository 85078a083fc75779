"""The decision every GoRules waiter makes (sensor poke, trigger, operator wait): given a run's state
and the approval policy, keep waiting or finish (and how). It uses the waiting
vocabulary both services share (:mod:`airflow_provider_buddy.utils.waiting`), so both services' events look
alike. No I/O here.
"""

from __future__ import annotations

from typing import Any, TypedDict

from airflow_provider_buddy.models.gorules import Run
from airflow_provider_buddy.models.status import StatusGroup, WaitKind
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, Decision, EventStatus, Step, WaitEvent

NO_APPROVE_CALL = (
    "{parameter}='approve' is not available for GoRules BRMS runs: the BRMS API documents no call to approve "
    "a deployment review (where we looked: the README's API reference notes), so it must be approved by a reviewer "
    "in the BRMS UI (the run's page, Deployments). "
    "Use on_approval='wait' to wait for that reviewer, 'succeed' to finish at the gate (and put an Airflow "
    "approval task next), or 'fail'"
)


class GoRulesWaitEvent(WaitEvent, total=False):
    """The payload of a GoRules wait's one event (plain JSON values, never a secret)."""

    run_id: str | None
    run_status: str | None
    project_id: str | None
    release_id: str | None
    release: str | None
    """The release's label (name and version)."""
    run_url: str | None
    waiting_environments: list[str]
    """The environments whose review is pending, at a gate."""
    jobs: list[dict[str, Any]]
    cancelled_by: str | None
    cancelled_comment: str | None


class GoRulesWaitSummary(TypedDict, total=False):
    """What a GoRules wait returns (XCom): the run, its status, release, link and jobs (and the gate)."""

    run_id: str | None
    status: str | None
    project_id: str | None
    release_id: str | None
    release: str | None
    run_url: str | None
    jobs: list[dict[str, Any]]
    waiting_environments: list[str]


def gorules_policy(value: Any, *, parameter: str = "on_approval") -> ApprovalPolicy:
    """Read a policy for a GoRules wait: ``wait``, ``succeed`` or ``fail``; ``approve`` is refused with the reason."""
    policy = ApprovalPolicy.parse(value, parameter=parameter)
    if policy is ApprovalPolicy.APPROVE:
        raise ValueError(NO_APPROVE_CALL.format(parameter=parameter))
    return policy


def describe_run(run: Run) -> str:
    """A short human reference: ``GoRules run <id> (release Pricing 1.4.0)``."""
    return f"GoRules run {run.id} (release {run.release_label})"


def pending_environments(run: Run) -> list[str]:
    """The environments whose review is pending, by label (never empty while the run waits)."""
    found = [job.environment_label for job in run.pending_reviews()]
    return found or ["an environment the BRMS did not name"]


def decide_run(run: Run, policy: ApprovalPolicy) -> Decision:
    """
    Decide what to do about ``run`` now.

    :param run: the latest state read from the BRMS.
    :param policy: what to do at a review gate (``wait``, ``succeed`` or ``fail``).
    """
    group = run.status_group
    if group.finished:
        return _ended(run)
    if group is StatusGroup.WAITING_FOR_PERSON:
        return _at_review(run, policy)
    return Decision(Step.KEEP_WAITING)


def _ended(run: Run) -> Decision:
    ref = describe_run(run)
    jobs = f"Jobs: {run.describe_jobs()}"
    group = run.status_group
    if group is StatusGroup.SUCCESS:
        return Decision.finish(EventStatus.SUCCESS, f"{ref} completed. {jobs}")
    if group is StatusGroup.CANCELLED:
        who = f" by {run.cancelled_by.display}" if run.cancelled_by is not None else ""
        why = f' ("{run.cancelled_comment}")' if run.cancelled_comment else ""
        return Decision.finish(EventStatus.CANCELLED, f"{ref} was cancelled{who}{why}. {jobs}")
    return Decision.finish(EventStatus.FAILED, f"{ref} failed. {jobs}")


def _at_review(run: Run, policy: ApprovalPolicy) -> Decision:
    ref = describe_run(run)
    where = ", ".join(pending_environments(run))

    def gate(step: Step, status: EventStatus | None, message: str) -> Decision:
        return Decision(step, status, message, WaitKind.APPROVAL, None, where)

    if policy is ApprovalPolicy.SUCCEED:
        return gate(Step.FINISH, EventStatus.WAITING_FOR_APPROVAL, f"{ref} waits for a review of the deployment to {where}")
    if policy is ApprovalPolicy.FAIL:
        message = (
            f"{ref} stopped for a review of the deployment to {where} (pending in the BRMS UI), and on_approval='fail'. "
            f"Jobs: {run.describe_jobs()}"
        )
        return gate(Step.FINISH, EventStatus.FAILED, message)
    return gate(Step.KEEP_WAITING, None, f"{ref} waits for a review of the deployment to {where}; waiting for a reviewer in the BRMS")


def run_event_payload(
    run: Run | None,
    decision: Decision,
    *,
    run_url: str | None = None,
    run_id: str | None = None,
    project_id: str | None = None,
) -> GoRulesWaitEvent:
    """The payload of a GoRules wait's one ``TriggerEvent`` (plain JSON values, no secrets)."""
    at_gate = run is not None and decision.waits_for is not None
    return GoRulesWaitEvent(
        status=(decision.status or EventStatus.ERROR).value,
        run_id=run.id if run is not None else run_id,
        run_status=run.status if run is not None else None,
        project_id=(run.project_id if run is not None and run.project_id else None) or project_id,
        release_id=run.release_id if run is not None else None,
        release=run.release_label if run is not None else None,
        run_url=run_url,
        message=decision.message,
        waits_for=decision.waits_for.value if decision.waits_for is not None else None,
        waiting_environments=pending_environments(run) if run is not None and at_gate else [],
        jobs=[job.summary() for job in run.ordered_jobs] if run is not None else [],
        cancelled_by=run.cancelled_by.display if run is not None and run.cancelled_by is not None else None,
        cancelled_comment=run.cancelled_comment if run is not None else None,
    )


def run_summary(event: GoRulesWaitEvent) -> GoRulesWaitSummary:
    """The XCom a GoRules wait returns: run id, status, release, link, jobs (and the pending environments at a gate)."""
    summary = GoRulesWaitSummary(
        run_id=event.get("run_id"),
        status=event.get("run_status"),
        project_id=event.get("project_id"),
        release_id=event.get("release_id"),
        release=event.get("release"),
        run_url=event.get("run_url"),
        jobs=list(event.get("jobs") or []),
    )
    if event.get("status") == EventStatus.WAITING_FOR_APPROVAL.value:
        summary["waiting_environments"] = list(event.get("waiting_environments") or [])
    return summary


def run_summary_now(run: Run, url: str) -> GoRulesWaitSummary:
    """The summary of a run as read now (what the cancel operator returns)."""
    return run_summary(run_event_payload(run, Decision(Step.FINISH, EventStatus.SUCCESS), run_url=url))
