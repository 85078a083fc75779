"""Typed errors of both services: what the hooks raise, and what a task fails with when the run it waits on ends badly.

Every error names the service, what was being done, the HTTP status (when there was one) and the
server's own message(s). None ever contains a token: messages are scrubbed before they are built.
"""

from __future__ import annotations

from enum import Enum

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_buddy.utils.airflow_compat import AirflowFailException


class ErrorKind(str, Enum):
    """What went wrong, independent of the service."""

    CONFIGURATION = "configuration"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    SERVER = "server"
    CLIENT = "client"
    CONNECTION = "connection"
    RESPONSE = "response"

    @property
    def transient(self) -> bool:
        """True for trouble that waiting can cure (rate limits, 5xx, network, a garbled answer)."""
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.SERVER, ErrorKind.CONNECTION, ErrorKind.RESPONSE)


class ProviderApiError(AirflowException):
    """
    Base of every error a hook of this provider raises.

    :param message: the full, token-free message.
    :param status_code: the HTTP status the server answered, or None when none came (kept as ``http_status``).
    :param server_messages: the server's own messages, as it sent them.
    :param resource: for not-found errors, which object is missing (workspace, project, ...).
    """

    kind: ErrorKind = ErrorKind.CLIENT

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        server_messages: tuple[str, ...] = (),
        resource: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = status_code
        self.server_messages = server_messages
        self.resource = resource
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """True when a later attempt may succeed."""
        return self.kind.transient

    def __str__(self) -> str:
        return self.message


class BuddyError(ProviderApiError):
    """Base of every error raised while talking to Buddy.Works."""


class BuddyConfigurationError(BuddyError):
    """The connection or a parameter is set up wrongly; nothing was sent."""

    kind = ErrorKind.CONFIGURATION


class BuddyAuthenticationError(BuddyError):
    """Buddy rejected the token (HTTP 401)."""

    kind = ErrorKind.AUTHENTICATION


class BuddyPermissionError(BuddyError):
    """The token lacks a scope, or the API is disabled in the workspace (HTTP 403)."""

    kind = ErrorKind.PERMISSION


class BuddyNotFoundError(BuddyError):
    """The workspace, project, pipeline or execution does not exist (HTTP 404)."""

    kind = ErrorKind.NOT_FOUND


class BuddyRateLimitError(BuddyError):
    """Buddy kept answering 429 after every retry."""

    kind = ErrorKind.RATE_LIMITED


class BuddyServerError(BuddyError):
    """Buddy kept answering 5xx after every retry."""

    kind = ErrorKind.SERVER


class BuddyApiError(BuddyError):
    """Any other error answer (400, 409, 422, a redirect, ...)."""

    kind = ErrorKind.CLIENT


class BuddyConnectionError(BuddyError):
    """No answer came: the connection failed or timed out (after retries where allowed)."""

    kind = ErrorKind.CONNECTION


class BuddyResponseError(BuddyError):
    """Buddy answered with a body this provider cannot read."""

    kind = ErrorKind.RESPONSE


class GoRulesError(ProviderApiError):
    """Base of every error raised while talking to GoRules BRMS."""


class GoRulesConfigurationError(GoRulesError):
    """The connection or a parameter is set up wrongly; nothing was sent."""

    kind = ErrorKind.CONFIGURATION


class GoRulesAuthenticationError(GoRulesError):
    """GoRules rejected the token (HTTP 401)."""

    kind = ErrorKind.AUTHENTICATION


class GoRulesPermissionError(GoRulesError):
    """The token has no permission for the project (HTTP 403)."""

    kind = ErrorKind.PERMISSION


class GoRulesNotFoundError(GoRulesError):
    """The project, run or release does not exist (HTTP 404)."""

    kind = ErrorKind.NOT_FOUND


class GoRulesRateLimitError(GoRulesError):
    """GoRules kept answering 429 after every retry."""

    kind = ErrorKind.RATE_LIMITED


class GoRulesServerError(GoRulesError):
    """GoRules kept answering 5xx after every retry."""

    kind = ErrorKind.SERVER


class GoRulesApiError(GoRulesError):
    """Any other error answer."""

    kind = ErrorKind.CLIENT


class GoRulesConnectionError(GoRulesError):
    """No answer came: the connection failed or timed out."""

    kind = ErrorKind.CONNECTION


class GoRulesResponseError(GoRulesError):
    """GoRules answered with a body this provider cannot read."""

    kind = ErrorKind.RESPONSE


class BuddyExecutionError(BuddyError):
    """
    A Buddy execution ended in a way the task must fail for.

    :param execution_id: the execution.
    :param html_url: its page in Buddy.
    :param execution_status: its last status.
    """

    kind = ErrorKind.CLIENT

    def __init__(
        self, message: str, *, execution_id: int | None = None, html_url: str | None = None, execution_status: str | None = None
    ) -> None:
        super().__init__(message)
        self.execution_id = execution_id
        self.html_url = html_url
        self.execution_status = execution_status


class BuddyExecutionFailedError(BuddyExecutionError):
    """The execution FAILED; the message names the failed action, its error and its last log lines."""


class BuddyExecutionCancelledError(BuddyExecutionError):
    """The execution was TERMINATED (cancelled)."""


class BuddyExecutionSkippedError(BuddyExecutionError):
    """The execution was SKIPPED (superseded) and ``skipped_is_success`` is off."""


class BuddyApprovalRequiredError(BuddyExecutionError):
    """The execution stopped for a person and the policy says fail (or cannot answer it)."""


class BuddyWaitTimeoutError(BuddyExecutionError):
    """The wait passed its deadline."""


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


class GoRulesChangeRequestError(GoRulesError, AirflowFailException):
    """
    A deploy made a change request (the environment requires approval) instead of a run, and the task was told to fail
    then (``on_change_request='fail'``). Airflow does not retry it: a retry would make another change request.

    :param message: what happened, naming the change request.
    :param change_request_id: the change request.
    """

    kind = ErrorKind.CLIENT

    def __init__(self, message: str, *, change_request_id: str | None = None) -> None:
        super().__init__(message)
        self.change_request_id = change_request_id
