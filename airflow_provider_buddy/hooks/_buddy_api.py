"""The Buddy.Works endpoints this provider uses, as :class:`ApiCall` descriptions (no I/O here)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from airflow_provider_buddy.exceptions import (
    BuddyApiError,
    BuddyAuthenticationError,
    BuddyConfigurationError,
    BuddyConnectionError,
    BuddyNotFoundError,
    BuddyPermissionError,
    BuddyRateLimitError,
    BuddyResponseError,
    BuddyServerError,
    ErrorKind,
)
from airflow_provider_buddy.hooks._http import ApiCall, ErrorFamily, Page, Replay
from airflow_provider_buddy.models.buddy import (
    ActionExecution,
    ActionLogs,
    Execution,
    IdentifierLookup,
    Pipeline,
    RunPipelineRequest,
    Variable,
    Workspace,
)

BUDDY_ERRORS = ErrorFamily(
    service="Buddy",
    classes={
        ErrorKind.CONFIGURATION: BuddyConfigurationError,
        ErrorKind.AUTHENTICATION: BuddyAuthenticationError,
        ErrorKind.PERMISSION: BuddyPermissionError,
        ErrorKind.NOT_FOUND: BuddyNotFoundError,
        ErrorKind.RATE_LIMITED: BuddyRateLimitError,
        ErrorKind.SERVER: BuddyServerError,
        ErrorKind.CLIENT: BuddyApiError,
        ErrorKind.CONNECTION: BuddyConnectionError,
        ErrorKind.RESPONSE: BuddyResponseError,
    },
    hints={
        ErrorKind.AUTHENTICATION: "Check the Buddy connection's token: it may be wrong, expired or IP-restricted",
        ErrorKind.PERMISSION: (
            "Check that the API is enabled in the workspace and that the token has the scope this call needs: WORKSPACE "
            "for every call (and alone for identifier lookups), plus, by the classic names, EXECUTION_INFO to read runs "
            "and pipelines, EXECUTION_RUN to run/cancel/retry/approve, EXECUTION_MANAGE to clear caches; by the newer "
            "names, PIPELINE_READ to read, PIPELINE_RUN to run/cancel/retry/approve, PIPELINE_WRITE or PIPELINE_MANAGE "
            "to clear caches"
        ),
    },
    resource_words=("action_execution", "execution", "pipeline", "project", "workspace"),
)

MEDIA_TYPE_HEADERS = {"X-Buddy-Media-Type": "buddy.v1.1.0"}

APPROVE_OPERATIONS = ("APPLY", "APPLY_VARIABLES", "SET_VARIABLES", "APPROVE_VT")
"""The operations that answer a wait for a person (https://buddy.works/docs/api/executions/cancel-retry-approve)."""
VARIABLES_OPERATIONS = ("APPLY_VARIABLES", "SET_VARIABLES")
"""The operations that carry ``variables``."""

_PIPELINES = TypeAdapter(list[Pipeline])
_EXECUTIONS = TypeAdapter(list[Execution])


def _q(value: str | int) -> str:
    return quote(str(value), safe="")


def _page_reader(key: str, adapter: TypeAdapter[Any], per_page: int, page: int) -> Any:
    def read(data: Any) -> Page:
        if not isinstance(data, dict):
            raise ValueError(f"expected an object with {key!r}, got {type(data).__name__}")
        items = adapter.validate_python(data.get(key) or [])
        total_pages = data.get("total_page_count")
        more = page < total_pages if isinstance(total_pages, int) else len(items) >= per_page
        return Page(items, more)

    return read


class BuddyApi:
    """
    Builds every Buddy call this provider makes.

    :param workspace: the connection's workspace, used when a call does not name one.
    """

    def __init__(self, workspace: str | None) -> None:
        self.workspace = workspace

    def _ws(self, workspace: str | None) -> str:
        chosen = workspace or self.workspace
        if not chosen:
            raise BuddyConfigurationError("No Buddy workspace: set the connection's Workspace (login) field or pass workspace=")
        return chosen

    def _pipeline_path(self, workspace: str | None, project_name: str, pipeline_id: int) -> str:
        return f"workspaces/{_q(self._ws(workspace))}/projects/{_q(project_name)}/pipelines/{_q(pipeline_id)}"

    def _what_pipeline(self, workspace: str | None, project_name: str, pipeline_id: int) -> str:
        return f"pipeline {pipeline_id} in project {project_name!r} (workspace {self._ws(workspace)!r})"

    def _what_execution(self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> str:
        return f"execution {execution_id} of {self._what_pipeline(workspace, project_name, pipeline_id)}"

    def get_workspace(self, workspace: str | None = None) -> ApiCall[Workspace]:
        """``GET /workspaces/{ws}``."""
        ws = self._ws(workspace)
        return ApiCall("GET", f"workspaces/{_q(ws)}", Workspace.model_validate, f"workspace {ws!r}")

    def run_pipeline(self, workspace: str | None, project_name: str, pipeline_id: int, request: RunPipelineRequest) -> ApiCall[Execution]:
        """``POST .../executions``: never replayed once it may have reached Buddy."""
        return ApiCall(
            "POST",
            self._pipeline_path(workspace, project_name, pipeline_id) + "/executions",
            Execution.model_validate,
            "run of " + self._what_pipeline(workspace, project_name, pipeline_id),
            json=request.to_api(),
            replay=Replay.NEVER_AFTER_SEND,
        )

    def get_execution(self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> ApiCall[Execution]:
        """``GET .../executions/{id}``."""
        return ApiCall(
            "GET",
            self._pipeline_path(workspace, project_name, pipeline_id) + f"/executions/{_q(execution_id)}",
            Execution.model_validate,
            self._what_execution(workspace, project_name, pipeline_id, execution_id),
        )

    def list_executions_page(self, workspace: str | None, project_name: str, pipeline_id: int, page: int, per_page: int) -> ApiCall[Page]:
        """``GET .../executions?page=&per_page=``."""
        return ApiCall(
            "GET",
            self._pipeline_path(workspace, project_name, pipeline_id) + "/executions",
            _page_reader("executions", _EXECUTIONS, per_page, page),
            "executions of " + self._what_pipeline(workspace, project_name, pipeline_id),
            params={"page": page, "per_page": per_page},
        )

    def _patch_execution(
        self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, body: dict[str, Any]
    ) -> ApiCall[Execution]:
        return ApiCall(
            "PATCH",
            self._pipeline_path(workspace, project_name, pipeline_id) + f"/executions/{_q(execution_id)}",
            Execution.model_validate,
            f"{body['operation']} of " + self._what_execution(workspace, project_name, pipeline_id, execution_id),
            json=body,
            replay=Replay.ONLY_IF_REJECTED,
        )

    def cancel_execution(self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> ApiCall[Execution]:
        """``PATCH .../executions/{id}`` with ``CANCEL``."""
        return self._patch_execution(workspace, project_name, pipeline_id, execution_id, {"operation": "CANCEL"})

    def retry_execution(self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> ApiCall[Execution]:
        """``PATCH .../executions/{id}`` with ``RETRY``."""
        return self._patch_execution(workspace, project_name, pipeline_id, execution_id, {"operation": "RETRY"})

    def approve_execution(
        self,
        workspace: str | None,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        variables: list[Variable] | None,
        action_execution_id: str | int | None,
        operation: str | None = None,
    ) -> ApiCall[Execution]:
        """
        ``PATCH .../executions/{id}`` answering a wait: ``operation`` (``APPLY``, ``APPLY_VARIABLES``, ``SET_VARIABLES``
        or ``APPROVE_VT``), by default ``APPLY`` or, given variables, ``APPLY_VARIABLES``. ``approve_action_id`` is sent
        as a string, as documented.
        """
        chosen = (operation or ("APPLY_VARIABLES" if variables else "APPLY")).upper()
        if chosen not in APPROVE_OPERATIONS:
            raise BuddyConfigurationError(f"operation must be one of {', '.join(APPROVE_OPERATIONS)}, got {operation!r}")
        if chosen in VARIABLES_OPERATIONS and not variables:
            raise BuddyConfigurationError(f"{chosen} needs variables (the values the waiting step asks for)")
        if chosen not in VARIABLES_OPERATIONS and variables:
            raise BuddyConfigurationError(f"{chosen} takes no variables (only {' and '.join(VARIABLES_OPERATIONS)} do)")
        body: dict[str, Any] = {"operation": chosen}
        if variables:
            body["variables"] = [v.to_api() for v in variables]
        if action_execution_id is not None:
            body["approve_action_id"] = str(action_execution_id)
        return self._patch_execution(workspace, project_name, pipeline_id, execution_id, body)

    def run_delayed_execution(self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> ApiCall[Execution]:
        """``PATCH .../executions/{id}`` with ``RUN_DELAYED``: a run scheduled by ``delay_until`` starts now
        (https://buddy.works/docs/api/runs/update/run-scheduled-execution)."""
        return self._patch_execution(workspace, project_name, pipeline_id, execution_id, {"operation": "RUN_DELAYED"})

    def get_action_execution(
        self, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, action_execution_id: str
    ) -> ApiCall[ActionExecution]:
        """``GET .../executions/{id}/action_executions/{aeid}``."""
        return ApiCall(
            "GET",
            self._pipeline_path(workspace, project_name, pipeline_id)
            + f"/executions/{_q(execution_id)}/action_executions/{_q(action_execution_id)}",
            ActionExecution.model_validate,
            f"action execution {action_execution_id} of " + self._what_execution(workspace, project_name, pipeline_id, execution_id),
        )

    def get_action_logs(
        self,
        workspace: str | None,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        action_execution_id: str,
        offset: int,
        limit: int,
    ) -> ApiCall[ActionLogs]:
        """``GET .../action_executions/{aeid}/logs?offset=&limit=``."""
        return ApiCall(
            "GET",
            self._pipeline_path(workspace, project_name, pipeline_id)
            + f"/executions/{_q(execution_id)}/action_executions/{_q(action_execution_id)}/logs",
            ActionLogs.model_validate,
            f"logs of action execution {action_execution_id} of "
            + self._what_execution(workspace, project_name, pipeline_id, execution_id),
            params={"offset": offset, "limit": limit},
        )

    def get_pipeline(self, workspace: str | None, project_name: str, pipeline_id: int) -> ApiCall[Pipeline]:
        """``GET .../pipelines/{id}``."""
        return ApiCall(
            "GET",
            self._pipeline_path(workspace, project_name, pipeline_id),
            Pipeline.model_validate,
            self._what_pipeline(workspace, project_name, pipeline_id),
        )

    def lookup_identifiers(
        self, workspace: str | None, *, project: str | None = None, pipeline: str | None = None, environment: str | None = None
    ) -> ApiCall[IdentifierLookup]:
        """``GET /workspaces/{ws}/identifiers?project=&pipeline=&environment=``: ids by human-readable ids (scope
        WORKSPACE; https://buddy.works/docs/api/platform/workspaces/get-id-by-identifier). A read."""
        ws = self._ws(workspace)
        params = {key: value for key, value in (("project", project), ("pipeline", pipeline), ("environment", environment)) if value}
        named = ", ".join(f"{key} {value!r}" for key, value in params.items()) or "nothing"
        return ApiCall(
            "GET",
            f"workspaces/{_q(ws)}/identifiers",
            IdentifierLookup.model_validate,
            f"identifier lookup of {named} (workspace {ws!r})",
            params=params,
        )

    def list_pipelines_page(self, workspace: str | None, project_name: str, page: int, per_page: int) -> ApiCall[Page]:
        """``GET /workspaces/{ws}/projects/{p}/pipelines?page=&per_page=``."""
        ws = self._ws(workspace)
        return ApiCall(
            "GET",
            f"workspaces/{_q(ws)}/projects/{_q(project_name)}/pipelines",
            _page_reader("pipelines", _PIPELINES, per_page, page),
            f"pipelines of project {project_name!r} (workspace {ws!r})",
            params={"page": page, "per_page": per_page},
        )

    def clear_pipeline_cache(self, workspace: str | None, project_name: str, pipeline_id: int) -> ApiCall[Pipeline]:
        """``PATCH .../pipelines/{id}`` with ``{"clear_cache": true}``."""
        return ApiCall(
            "PATCH",
            self._pipeline_path(workspace, project_name, pipeline_id),
            Pipeline.model_validate,
            "cache clear of " + self._what_pipeline(workspace, project_name, pipeline_id),
            json={"clear_cache": True},
            replay=Replay.ONLY_IF_REJECTED,
        )
