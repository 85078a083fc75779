"""JSON views of emulated BRMS runs and jobs, shaped like the GoRules BRMS API's documented responses."""

from __future__ import annotations

from typing import Any

from airflow_provider_buddy.testing.clock import iso
from airflow_provider_buddy.testing.gorules.runs import Job, Project, Run


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
