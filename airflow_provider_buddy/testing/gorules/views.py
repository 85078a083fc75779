"""JSON views of emulated BRMS runs, jobs and environments, shaped like the GoRules BRMS API's documented responses."""

from __future__ import annotations

from typing import Any

from airflow_provider_buddy.testing.clock import iso
from airflow_provider_buddy.testing.gorules.runs import ChangeRequest, Environment, Job, Project, Run


def job_view(project: Project, run: Run, job: Job) -> dict[str, Any]:
    """A job, shaped like the documented example (seed 003)."""
    previous = job.previous_release
    return {
        "id": job.id,
        "status": job.status,
        "order": job.order,
        "environmentId": job.environment.id,
        "projectId": project.id,
        "deploymentWorkflowRunId": run.id,
        "createdAt": iso(job.created),
        "environment": job.environment.view(),
        "reviewedAt": iso(job.reviewed_at),
        "reviewedBy": job.reviewed_by,
        "reviewedComment": job.reviewed_comment,
        "reviewedConclusion": job.reviewed_conclusion,
        "previousRelease": previous.ref() if previous is not None else None,
        "previousReleaseId": previous.id if previous is not None else None,
        "event": job.event,
        "data": job.data,
    }


def run_view(project: Project, run: Run) -> dict[str, Any]:
    """A run, shaped like the documented example (seed 003)."""
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "releaseId": run.release.id,
        "projectId": project.id,
        "createdById": run.created_by["id"],
        "createdAt": iso(run.created),
        "runVersion": "release",
        "release": run.release.ref(),
        "createdBy": run.created_by,
        "completedAt": iso(run.completed),
        "cancelledById": run.cancelled_by["id"] if run.cancelled_by else None,
        "cancelledBy": run.cancelled_by,
        "cancelledComment": run.cancelled_comment,
        "jobs": [job_view(project, run, job) for job in sorted(run.jobs, key=lambda j: j.order)],
    }


def environment_view(project: Project, env: Environment, order: int, change_requests: list[ChangeRequest]) -> dict[str, Any]:
    """An environment as ``GET .../environments`` lists it (https://docs.gorules.io/api-reference/brms/environment/list-environments):
    its approval settings, the release it runs now and its change requests."""
    release = project.deployed.get(env.id)
    return {
        "id": env.id,
        "name": env.name,
        "type": "brms",
        "projectId": project.id,
        "requiredReviewers": env.review or env.change_request,
        "addToWorkflow": True,
        "approvalGroups": [],
        "approvalMode": env.mode,
        "createdAt": iso(project.created),
        "updatedAt": iso(project.created),
        "key": env.key,
        "release": release.short_view() if release is not None else None,
        "releaseId": release.id if release is not None else None,
        "deploymentId": None,
        "deployment": None,
        "project": {"id": project.id, "name": project.name, "key": project.view()["key"]},
        "reviewers": [],
        "workflowOrder": order,
        "changeRequests": [cr.ref() for cr in change_requests if cr.environment.id == env.id],
    }
