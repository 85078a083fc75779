"""Errors a GoRules task fails with when the run it waits on ends badly (beside the API errors in
:mod:`airflow_provider_buddy.exceptions`). Messages name the run, its jobs, environments and reviewers.
"""

from __future__ import annotations

from airflow_provider_buddy.exceptions import ErrorKind, GoRulesError


class GoRulesRunError(GoRulesError):
    """
    A GoRules run ended in a way the task must fail for.

    :param message: what happened, with the run's jobs.
    :param run_id: the run.
    :param run_url: its address.
    :param run_status: its last status.
    """

    kind = ErrorKind.CLIENT

    def __init__(self, message: str, *, run_id: str | None = None, run_url: str | None = None, run_status: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.run_url = run_url
        self.run_status = run_status


class GoRulesRunFailedError(GoRulesRunError):
    """The run ended in ``failure`` (a job failed or a review was rejected)."""


class GoRulesRunCancelledError(GoRulesRunError):
    """The run was ``cancelled``; the message says by whom and why."""


class GoRulesReviewRequiredError(GoRulesRunError):
    """The run waits for a review and ``on_approval='fail'``; the message names the environments."""


class GoRulesWaitTimeoutError(GoRulesRunError):
    """The wait passed its deadline."""
