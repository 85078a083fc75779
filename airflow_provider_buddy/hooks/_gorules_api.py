"""The GoRules BRMS endpoints this provider uses, as :class:`ApiCall` descriptions (no I/O here).

Paths are relative to the API root, which always ends in ``/api`` (:func:`gorules_api_url` adds it
when the connection's URL lacks it, as the official CLI does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from airflow_provider_buddy.exceptions import (
    ErrorKind,
    GoRulesApiError,
    GoRulesAuthenticationError,
    GoRulesConfigurationError,
    GoRulesConnectionError,
    GoRulesNotFoundError,
    GoRulesPermissionError,
    GoRulesRateLimitError,
    GoRulesResponseError,
    GoRulesServerError,
)
from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._forms import GORULES_CLOUD_HINT
from airflow_provider_buddy.hooks._http import ApiCall, ErrorFamily, HttpCore, Page, Replay, _Transient
from airflow_provider_buddy.models.gorules import DeployResult, Environment, Paginate, Release, Run
from airflow_provider_buddy.utils.arguments import non_empty

GORULES_ERRORS = ErrorFamily(
    service="GoRules",
    classes={
        ErrorKind.CONFIGURATION: GoRulesConfigurationError,
        ErrorKind.AUTHENTICATION: GoRulesAuthenticationError,
        ErrorKind.PERMISSION: GoRulesPermissionError,
        ErrorKind.NOT_FOUND: GoRulesNotFoundError,
        ErrorKind.RATE_LIMITED: GoRulesRateLimitError,
        ErrorKind.SERVER: GoRulesServerError,
        ErrorKind.CLIENT: GoRulesApiError,
        ErrorKind.CONNECTION: GoRulesConnectionError,
        ErrorKind.RESPONSE: GoRulesResponseError,
    },
    hints={
        ErrorKind.AUTHENTICATION: (
            "Check the GoRules connection's personal access token: it may be wrong or expired, and a token "
            "only works on the BRMS instance that issued it (dev, uat and prod each need their own)"
        ),
        ErrorKind.PERMISSION: (
            "The token has no permission for this project or call (a personal access token is made with 'All projects' "
            "or chosen projects, and permissions such as Releases: https://docs.gorules.io/reference/api-introduction)"
        ),
    },
    resource_words=("release", "run", "project", "environment"),
)

DEFAULT_PER_PAGE = 50
CLOUD_HINT = GORULES_CLOUD_HINT
GORULES_RETRYABLE = frozenset({408})
"""Statuses retried on reads beyond the shared rule (the official CLI also retries 408 Request Timeout)."""

_RUNS = TypeAdapter(list[Run])
_RELEASES = TypeAdapter(list[Release])
_ENVIRONMENTS = TypeAdapter(list[Environment])


def gorules_api_url(base_url: str) -> str:
    """
    The API root: the BRMS URL with ``/api`` appended unless it already ends with it.

    :param base_url: the normalised URL (scheme, host, any path; no trailing slash).
    """
    url = base_url.rstrip("/")
    return url if url.lower().endswith("/api") else f"{url}/api"


def with_api_root(settings: ClientSettings) -> ClientSettings:
    """``settings`` whose base URL is the API root (see :func:`gorules_api_url`)."""
    return dataclasses.replace(settings, base_url=gorules_api_url(settings.base_url))


class GoRulesHttpCore(HttpCore):
    """
    :class:`HttpCore` with the GoRules CLI's retry rule: reads are also retried on 408.

    :param settings: the connection's settings.
    :param errors: the error family (``GORULES_ERRORS``).
    """

    def check_status(self, call: ApiCall[Any], response: httpx.Response) -> None:
        """As :meth:`HttpCore.check_status`, plus 408 is transient for reads."""
        if response.status_code in GORULES_RETRYABLE and call.replay is Replay.SAFE:
            raise _Transient(ErrorKind.SERVER, f"HTTP {response.status_code}", status=response.status_code, headers=response.headers)
        super().check_status(call, response)


def run_url(api_root: str, project_id: str, run_id: str) -> str:
    """The run's address under the API root (the BRMS UI has no documented deep link)."""
    return f"{api_root.rstrip('/')}/projects/{_q(project_id)}/runs/{_q(run_id)}"


def run_page(settings: ClientSettings, project_id: str, run_id: str) -> str:
    """Where a person opens the run: the connection's ``run_page`` template, else the BRMS itself (the API root without
    ``/api``): the BRMS UI documents no deep link to a run."""
    if settings.page_template:
        return settings.page_template.format(project_id=_q(project_id), run_id=_q(run_id))
    root = settings.base_url.rstrip("/")
    return root[: -len("/api")] if root.lower().endswith("/api") else root


def _q(value: str) -> str:
    return quote(str(value), safe="")


def require_text(value: Any, parameter: str) -> str:
    """``value`` as a non-blank string, or :class:`GoRulesConfigurationError` naming ``parameter`` (nothing is sent)."""
    return non_empty(value, parameter, error=GoRulesConfigurationError)


def require_comment(comment: Any, parameter: str = "comment", *, error: Callable[[str], Exception] = GoRulesConfigurationError) -> str:
    """The cancel comment the API requires (at least one character), or a clear error (``error``) before anything is sent."""
    if not isinstance(comment, str) or not comment.strip():
        raise error(
            f"{parameter} is required: the GoRules API refuses to cancel a run without a reason (at least one character), got {comment!r}"
        )
    return comment.strip()


def _page_reader(adapter: TypeAdapter[Any], page: int, per_page: int) -> Any:
    def read(data: Any) -> Page:
        if isinstance(data, list):  # tolerate a bare list
            return Page(adapter.validate_python(data), False)
        if not isinstance(data, dict):
            raise ValueError(f"expected an object with 'results', got {type(data).__name__}")
        items = adapter.validate_python(data.get("results") or [])
        raw = data.get("paginate")
        paginate = Paginate.model_validate(raw) if isinstance(raw, dict) else Paginate()
        return Page(items, paginate.has_more(page, len(items), per_page))

    return read


def _list_page(path: str, adapter: TypeAdapter[Any], what: str, page: int, per_page: int) -> ApiCall[Page]:
    """``GET {path}?page=&perPage=``: one page of a list endpoint."""
    return ApiCall("GET", path, _page_reader(adapter, page, per_page), what, params={"page": page, "perPage": per_page})


def _project(project_id: str) -> str:
    return f"projects/{_q(require_text(project_id, 'project_id'))}"


def list_projects_page(page: int = 1, per_page: int = 1) -> ApiCall[Page]:
    """``GET /api/projects?page=&perPage=`` (used by the connection test)."""
    return _list_page("projects", TypeAdapter(list[dict[str, Any]]), "projects", page, per_page)


def list_runs_page(project_id: str, page: int, per_page: int = DEFAULT_PER_PAGE) -> ApiCall[Page]:
    """``GET /api/projects/{projectId}/runs?page=&perPage=``."""
    return _list_page(_project(project_id) + "/runs", _RUNS, f"runs of project {project_id}", page, per_page)


def get_run(project_id: str, run_id: str) -> ApiCall[Run]:
    """``GET /api/projects/{projectId}/runs/{runId}``."""
    return ApiCall(
        "GET",
        _project(project_id) + f"/runs/{_q(require_text(run_id, 'run_id'))}",
        Run.model_validate,
        f"run {run_id} of project {project_id}",
    )


def cancel_run(project_id: str, run_id: str, comment: str) -> ApiCall[Run]:
    """``POST /api/projects/{projectId}/runs/{runId}/cancel`` with ``{"comment"}`` (required, checked here)."""
    reason = require_comment(comment)
    return ApiCall(
        "POST",
        _project(project_id) + f"/runs/{_q(require_text(run_id, 'run_id'))}/cancel",
        Run.model_validate,
        f"cancel of run {run_id} of project {project_id}",
        json={"comment": reason},
        replay=Replay.ONLY_IF_REJECTED,
    )


def deploy_release(project_id: str, release_id: str, environment_id: str, comment: str | None) -> ApiCall[DeployResult]:
    """``POST /api/projects/{projectId}/releases/deploy``: never replayed once it may have reached the BRMS."""
    body: dict[str, Any] = {
        "releaseId": require_text(release_id, "release_id"),
        "environmentId": require_text(environment_id, "environment_id"),
    }
    if comment is not None and comment.strip():
        body["comment"] = comment.strip()
    return ApiCall(
        "POST",
        _project(project_id) + "/releases/deploy",
        DeployResult.from_api,
        f"deploy of release {release_id} to environment {environment_id} (project {project_id})",
        json=body,
        replay=Replay.NEVER_AFTER_SEND,
    )


def list_releases_page(project_id: str, page: int, per_page: int = DEFAULT_PER_PAGE) -> ApiCall[Page]:
    """``GET /api/projects/{projectId}/releases?page=&perPage=``."""
    return _list_page(_project(project_id) + "/releases", _RELEASES, f"releases of project {project_id}", page, per_page)


def _environments(data: Any) -> list[Environment]:
    # documented as a bare array (no paging); an object with "results" is read too
    items = data.get("results") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"expected a list of environments, got {type(data).__name__}")
    return _ENVIRONMENTS.validate_python(items)


def list_environments(project_id: str) -> ApiCall[list[Environment]]:
    """``GET /api/projects/{projectId}/environments``: every environment of the project, a bare array
    (https://docs.gorules.io/api-reference/brms/environment/list-environments)."""
    return ApiCall("GET", _project(project_id) + "/environments", _environments, f"environments of project {project_id}")


def get_release(project_id: str, release_id: str) -> ApiCall[Release]:
    """``GET /api/projects/{projectId}/releases/{releaseId}``, with its change requests
    (https://docs.gorules.io/api-reference/brms/release/get-a-release)."""
    return ApiCall(
        "GET",
        _project(project_id) + f"/releases/{_q(require_text(release_id, 'release_id'))}",
        Release.model_validate,
        f"release {release_id} of project {project_id}",
    )
