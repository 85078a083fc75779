"""``BuddyHook``: the Buddy.Works API, sync and async, with retries and typed models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, TypeVar

import httpx

from airflow_provider_buddy.exceptions import (
    BuddyApiError,
    BuddyConfigurationError,
    BuddyError,
    BuddyNotFoundError,
    BuddyPermissionError,
)
from airflow_provider_buddy.hooks._base import ApiHookBase, Steps, walk_pages
from airflow_provider_buddy.hooks._buddy_api import BUDDY_ERRORS, MEDIA_TYPE_HEADERS, VARIABLES_OPERATIONS, BuddyApi
from airflow_provider_buddy.hooks._connection import ClientSettings, settings_from_connection
from airflow_provider_buddy.hooks._forms import BUDDY_FORM, DEFAULT_BUDDY_API_URL, field_behaviour, form_widgets
from airflow_provider_buddy.hooks._http import ApiCall, HttpCore
from airflow_provider_buddy.models.buddy import (
    ActionExecution,
    ActionLogs,
    Execution,
    IdentifierLookup,
    Pipeline,
    RunPipelineRequest,
    Variable,
    Workspace,
    variables_from,
)
from airflow_provider_buddy.models.buddy_status import approve_operations
from airflow_provider_buddy.utils.arguments import pipeline_ref

if TYPE_CHECKING:
    from airflow.sdk import Connection


DEFAULT_API_URL = DEFAULT_BUDDY_API_URL
LOG_PAGE_LIMIT = 1000
T = TypeVar("T")


class WaitAnswer(NamedTuple):
    """What answering a wait sent: the execution as Buddy answered, and the operation it took."""

    execution: Execution
    operation: str


class FailureDetails(TypedDict):
    """Why an execution failed: its failed action, that action's error message and its last log lines."""

    failed_action: str | None
    error_message: str | None
    log_tail: list[str]


def buddy_settings(conn: Connection) -> ClientSettings:
    """
    Read a ``buddy`` connection; raises :class:`BuddyConfigurationError` naming the field that is wrong.

    :param conn: the Airflow connection.
    """
    try:
        return settings_from_connection(
            conn_id=conn.conn_id,
            host=conn.host,
            port=conn.port,
            token=conn.password,
            account=conn.login,
            extra=conn.extra,
            default_url=DEFAULT_API_URL,
            account_label=None,
        )
    except ValueError as exc:
        raise BuddyConfigurationError(str(exc)) from None


class BuddyHook(ApiHookBase):
    """
    Talks to the Buddy.Works REST API. Every method has an async twin prefixed ``a``.

    Connection fields: host = API URL (empty means ``https://api.buddy.works``; EU, Asia and
    on-premises ``https://HOST/api`` URLs work), login = workspace, password = personal access token,
    extra = ``{"timeout": 30, "verify": true, "max_retries": 5}``.

    :param buddy_conn_id: the Airflow connection to use.
    :param settings: ready settings, bypassing the connection lookup (used by triggers that already
        read the connection asynchronously).
    :param async_client: a shared ``httpx.AsyncClient`` to use instead of the hook's own.
    :param retry_log_level: the level each retry is logged at.
    """

    conn_name_attr = "buddy_conn_id"
    default_conn_name = "buddy_default"
    conn_type = "buddy"
    hook_name = "Buddy.Works"

    def __init__(
        self,
        buddy_conn_id: str = default_conn_name,
        *,
        settings: ClientSettings | None = None,
        async_client: httpx.AsyncClient | None = None,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        super().__init__(buddy_conn_id, settings=settings, async_client=async_client, retry_log_level=retry_log_level)
        self.buddy_conn_id = buddy_conn_id

    def __repr__(self) -> str:
        return f"BuddyHook(buddy_conn_id={self.buddy_conn_id!r})"

    # ---- the Airflow connection form ---------------------------------------------------------
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the form on Airflow 3.1 (3.2+ reads them from the provider info)."""
        return form_widgets(BUDDY_FORM)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the fields Buddy does not use and name the others as Buddy does (Airflow 3.2+ reads the same form
        from the provider info)."""
        return field_behaviour(BUDDY_FORM)

    # ---- settings and clients ----------------------------------------------------------------
    def read_settings(self, conn: Connection) -> ClientSettings:
        """Read the ``buddy`` connection."""
        return buddy_settings(conn)

    def make_core(self, settings: ClientSettings, *, logger: Any, retry_log_level: int) -> HttpCore:
        """The Buddy HTTP core (its error family and media-type header)."""
        return HttpCore(settings, BUDDY_ERRORS, extra_headers=MEDIA_TYPE_HEADERS, logger=logger, retry_log_level=retry_log_level)

    @property
    def api(self) -> BuddyApi:
        """Request builders bound to the connection's workspace."""
        return BuddyApi(self.settings.account)

    async def _aapi(self) -> BuddyApi:
        return BuddyApi((await self.asettings()).account)

    def run_api(self, steps: Callable[[BuddyApi], Steps[T]]) -> T:
        """Run an algorithm of several Buddy calls, written once for both modes (``steps(api)``), with the sync client."""
        return self.run_steps(steps(self.api))

    async def arun_api(self, steps: Callable[[BuddyApi], Steps[T]]) -> T:
        """Async :meth:`run_api`."""
        return await self.arun_steps(steps(await self._aapi()))

    # ---- the UI's Test button ----------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the URL, the token and the workspace with one read."""
        try:
            workspace = self.get_workspace()
        except BuddyError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        name = workspace.name or workspace.domain or self.settings.account
        return True, f"Connected to Buddy workspace {name!r} at {self.settings.base_url}"

    # ---- workspace -----------------------------------------------------------------------------
    def get_workspace(self, workspace: str | None = None) -> Workspace:
        """The workspace (the connection's by default)."""
        return self.call(self.api.get_workspace(workspace))

    async def aget_workspace(self, workspace: str | None = None) -> Workspace:
        """Async :meth:`get_workspace`."""
        return await self.acall((await self._aapi()).get_workspace(workspace))

    # ---- executions ----------------------------------------------------------------------------
    def run_pipeline(
        self,
        project_name: str,
        pipeline_id: int,
        request: RunPipelineRequest | Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
    ) -> Execution:
        """
        Start a run. The POST is never sent twice once it may have reached Buddy.

        :param project_name: the project's name id.
        :param pipeline_id: the pipeline's numeric id.
        :param request: the run's options (a :class:`RunPipelineRequest` or its keyword dict).
        :param workspace: overrides the connection's workspace.
        """
        return self.call(self.api.run_pipeline(workspace, project_name, pipeline_id, _run_request(request)))

    async def arun_pipeline(
        self,
        project_name: str,
        pipeline_id: int,
        request: RunPipelineRequest | Mapping[str, Any] | None = None,
        *,
        workspace: str | None = None,
    ) -> Execution:
        """Async :meth:`run_pipeline`."""
        call = (await self._aapi()).run_pipeline(workspace, project_name, pipeline_id, _run_request(request))
        return await self.acall(call)

    def get_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """One execution, with its action executions."""
        return self.call(self.api.get_execution(workspace, project_name, pipeline_id, execution_id))

    async def aget_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Async :meth:`get_execution`."""
        return await self.acall((await self._aapi()).get_execution(workspace, project_name, pipeline_id, execution_id))

    def list_executions(
        self, project_name: str, pipeline_id: int, *, workspace: str | None = None, per_page: int = 20, max_items: int | None = None
    ) -> list[Execution]:
        """
        The pipeline's executions, newest first, walking pages.

        :param max_items: stop after this many (None walks every page).
        """
        api = self.api
        return self.walk(lambda page: api.list_executions_page(workspace, project_name, pipeline_id, page, per_page), max_items)

    async def alist_executions(
        self, project_name: str, pipeline_id: int, *, workspace: str | None = None, per_page: int = 20, max_items: int | None = None
    ) -> list[Execution]:
        """Async :meth:`list_executions`."""
        api = await self._aapi()
        return await self.awalk(lambda page: api.list_executions_page(workspace, project_name, pipeline_id, page, per_page), max_items)

    def cancel_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Cancel (``CANCEL``) an execution."""
        return self.call(self.api.cancel_execution(workspace, project_name, pipeline_id, execution_id))

    async def acancel_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Async :meth:`cancel_execution`."""
        return await self.acall((await self._aapi()).cancel_execution(workspace, project_name, pipeline_id, execution_id))

    def retry_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Retry (``RETRY``) a failed or cancelled execution."""
        return self.call(self.api.retry_execution(workspace, project_name, pipeline_id, execution_id))

    async def aretry_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Async :meth:`retry_execution`."""
        return await self.acall((await self._aapi()).retry_execution(workspace, project_name, pipeline_id, execution_id))

    def approve_execution(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        variables: Mapping[str, Any] | Sequence[Any] | None = None,
        action_execution_id: str | int | None = None,
        *,
        operation: str | None = None,
        workspace: str | None = None,
    ) -> Execution:
        """
        Answer a waiting execution with one operation: ``APPLY``, ``APPLY_VARIABLES``, ``SET_VARIABLES`` or
        ``APPROVE_VT``; by default ``APPLY``, or ``APPLY_VARIABLES`` when variables are given. :meth:`answer_wait`
        chooses the operation from what the execution waits for.

        :param variables: answers to a "pass arguments" or settable-variables prompt (dict or list of variables).
        :param action_execution_id: the waiting action execution, sent as ``approve_action_id``.
        :param operation: the operation to send.
        """
        api = self.api
        return self.call(
            api.approve_execution(workspace, project_name, pipeline_id, execution_id, _variables(variables), action_execution_id, operation)
        )

    async def aapprove_execution(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        variables: Mapping[str, Any] | Sequence[Any] | None = None,
        action_execution_id: str | int | None = None,
        *,
        operation: str | None = None,
        workspace: str | None = None,
    ) -> Execution:
        """Async :meth:`approve_execution`."""
        api = await self._aapi()
        call = api.approve_execution(
            workspace, project_name, pipeline_id, execution_id, _variables(variables), action_execution_id, operation
        )
        return await self.acall(call)

    def answer_wait(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        wait_status: str | None,
        *,
        variables: Mapping[str, Any] | Sequence[Any] | None = None,
        action_execution_id: str | int | None = None,
        workspace: str | None = None,
    ) -> WaitAnswer:
        """
        Answer the wait a person is asked for with the operation that wait takes
        (:func:`~airflow_provider_buddy.models.buddy_status.approve_operations`): ``APPLY`` for an approval,
        ``APPLY_VARIABLES`` for "pass arguments", ``SET_VARIABLES`` for settable variables (then ``APPLY_VARIABLES`` if
        Buddy refuses it), ``APPROVE_VT`` for a visual-test session.

        :param wait_status: the waiting status (:attr:`Execution.waiting_status`).
        :param variables: the answers, for a variables prompt.
        :param action_execution_id: the waiting action execution, sent as ``approve_action_id``.
        :returns: the execution as Buddy answered and the operation it took.
        """
        steps = answer_wait_steps(
            self.api, workspace, project_name, pipeline_id, execution_id, wait_status, _variables(variables), action_execution_id
        )
        return self.run_steps(steps)

    async def aanswer_wait(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        wait_status: str | None,
        *,
        variables: Mapping[str, Any] | Sequence[Any] | None = None,
        action_execution_id: str | int | None = None,
        workspace: str | None = None,
    ) -> WaitAnswer:
        """Async :meth:`answer_wait`."""
        api = await self._aapi()
        steps = answer_wait_steps(
            api, workspace, project_name, pipeline_id, execution_id, wait_status, _variables(variables), action_execution_id
        )
        return await self.arun_steps(steps)

    def run_delayed_execution(self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None) -> Execution:
        """Start a run scheduled with ``delay_until`` now (``RUN_DELAYED``)."""
        return self.call(self.api.run_delayed_execution(workspace, project_name, pipeline_id, execution_id))

    async def arun_delayed_execution(
        self, project_name: str, pipeline_id: int, execution_id: int, *, workspace: str | None = None
    ) -> Execution:
        """Async :meth:`run_delayed_execution`."""
        return await self.acall((await self._aapi()).run_delayed_execution(workspace, project_name, pipeline_id, execution_id))

    def get_action_execution(
        self, project_name: str, pipeline_id: int, execution_id: int, action_execution_id: str, *, workspace: str | None = None
    ) -> ActionExecution:
        """One action execution, with its details (error message, variables, approval)."""
        return self.call(self.api.get_action_execution(workspace, project_name, pipeline_id, execution_id, action_execution_id))

    async def aget_action_execution(
        self, project_name: str, pipeline_id: int, execution_id: int, action_execution_id: str, *, workspace: str | None = None
    ) -> ActionExecution:
        """Async :meth:`get_action_execution`."""
        api = await self._aapi()
        return await self.acall(api.get_action_execution(workspace, project_name, pipeline_id, execution_id, action_execution_id))

    def get_action_execution_logs(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        action_execution_id: str,
        *,
        tail: int | None = None,
        workspace: str | None = None,
    ) -> list[str]:
        """
        An action execution's log lines.

        :param tail: only the last ``tail`` lines (two small requests instead of the whole log).
        """
        return self.run_steps(_log_steps(self.api, workspace, project_name, pipeline_id, execution_id, action_execution_id, tail))

    async def aget_action_execution_logs(
        self,
        project_name: str,
        pipeline_id: int,
        execution_id: int,
        action_execution_id: str,
        *,
        tail: int | None = None,
        workspace: str | None = None,
    ) -> list[str]:
        """Async :meth:`get_action_execution_logs`."""
        api = await self._aapi()
        return await self.arun_steps(_log_steps(api, workspace, project_name, pipeline_id, execution_id, action_execution_id, tail))

    def get_failure_details(
        self, project_name: str, pipeline_id: int, execution: Execution, *, tail: int, workspace: str | None = None
    ) -> FailureDetails:
        """
        Why a failed execution failed: its failed action's name, error message (read from the action execution when
        the execution leaves it out) and last ``tail`` log lines.

        :param execution: the failed execution as read.
        :param tail: how many log lines (0: none).
        """
        return self.run_steps(_failure_steps(self.api, workspace, project_name, pipeline_id, execution, tail))

    async def aget_failure_details(
        self, project_name: str, pipeline_id: int, execution: Execution, *, tail: int, workspace: str | None = None
    ) -> FailureDetails:
        """Async :meth:`get_failure_details`."""
        api = await self._aapi()
        return await self.arun_steps(_failure_steps(api, workspace, project_name, pipeline_id, execution, tail))

    # ---- pipelines -----------------------------------------------------------------------------
    def get_pipeline(self, project_name: str, pipeline_id: int, *, workspace: str | None = None) -> Pipeline:
        """One pipeline."""
        return self.call(self.api.get_pipeline(workspace, project_name, pipeline_id))

    async def aget_pipeline(self, project_name: str, pipeline_id: int, *, workspace: str | None = None) -> Pipeline:
        """Async :meth:`get_pipeline`."""
        return await self.acall((await self._aapi()).get_pipeline(workspace, project_name, pipeline_id))

    def list_pipelines(self, project_name: str, *, workspace: str | None = None, per_page: int = 50) -> list[Pipeline]:
        """Every pipeline of the project, walking pages."""
        api = self.api
        return self.walk(lambda page: api.list_pipelines_page(workspace, project_name, page, per_page))

    async def alist_pipelines(self, project_name: str, *, workspace: str | None = None, per_page: int = 50) -> list[Pipeline]:
        """Async :meth:`list_pipelines`."""
        api = await self._aapi()
        return await self.awalk(lambda page: api.list_pipelines_page(workspace, project_name, page, per_page))

    def lookup_identifiers(
        self, *, project: str | None = None, pipeline: str | None = None, environment: str | None = None, workspace: str | None = None
    ) -> IdentifierLookup:
        """
        Ids of objects named by their human-readable ids (``GET /workspaces/{ws}/identifiers``; scope WORKSPACE).

        :param project: the project's name id.
        :param pipeline: the pipeline's identifier (with ``project``).
        :param environment: the environment's identifier.
        """
        return self.call(self.api.lookup_identifiers(workspace, project=project, pipeline=pipeline, environment=environment))

    async def alookup_identifiers(
        self, *, project: str | None = None, pipeline: str | None = None, environment: str | None = None, workspace: str | None = None
    ) -> IdentifierLookup:
        """Async :meth:`lookup_identifiers`."""
        api = await self._aapi()
        return await self.acall(api.lookup_identifiers(workspace, project=project, pipeline=pipeline, environment=environment))

    def find_pipeline(self, project_name: str, id_or_identifier_or_name: int | str, *, workspace: str | None = None) -> Pipeline:
        """
        A pipeline by numeric id, identifier or name. An identifier is looked up with Buddy's identifiers endpoint (one
        read; it also finds pipelines the pipelines list hides by their visibility settings), and the answer holds the
        id and identifier only. When that lookup finds nothing (a display name, or a Buddy without the endpoint) the
        project's pipelines are listed and matched by identifier, then by exact name.

        :param id_or_identifier_or_name: an int id, a digit string, an identifier or an exact name.
        """
        return self.run_steps(_find_steps(self.api, workspace, project_name, id_or_identifier_or_name))

    async def afind_pipeline(self, project_name: str, id_or_identifier_or_name: int | str, *, workspace: str | None = None) -> Pipeline:
        """Async :meth:`find_pipeline`."""
        return await self.arun_steps(_find_steps(await self._aapi(), workspace, project_name, id_or_identifier_or_name))

    def clear_pipeline_cache(self, project_name: str, pipeline_id: int, *, workspace: str | None = None) -> Pipeline:
        """Clear every action cache of the pipeline."""
        return self.call(self.api.clear_pipeline_cache(workspace, project_name, pipeline_id))

    async def aclear_pipeline_cache(self, project_name: str, pipeline_id: int, *, workspace: str | None = None) -> Pipeline:
        """Async :meth:`clear_pipeline_cache`."""
        return await self.acall((await self._aapi()).clear_pipeline_cache(workspace, project_name, pipeline_id))


def _run_request(request: RunPipelineRequest | Mapping[str, Any] | None) -> RunPipelineRequest:
    if request is None:
        return RunPipelineRequest()
    if isinstance(request, RunPipelineRequest):
        return request
    return RunPipelineRequest(**dict(request))


def _variables(variables: Mapping[str, Any] | Sequence[Any] | None) -> list[Variable] | None:
    found = variables_from(variables)
    return found or None


def _log_steps(
    api: BuddyApi, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, action_execution_id: str, tail: int | None
) -> Steps[list[str]]:
    def page(offset: int, limit: int) -> ApiCall[ActionLogs]:
        return api.get_action_logs(workspace, project_name, pipeline_id, execution_id, action_execution_id, offset, limit)

    offset = 0
    if tail is not None:
        first: ActionLogs = yield page(0, 1)
        offset = max(0, first.total_element_count - tail)
    lines: list[str] = []
    while True:
        chunk: ActionLogs = yield page(offset, LOG_PAGE_LIMIT)
        lines.extend(chunk.logs)
        offset += len(chunk.logs)
        if not chunk.logs or offset >= chunk.total_element_count:
            return lines[-tail:] if tail else lines


def _failure_steps(
    api: BuddyApi, workspace: str | None, project_name: str, pipeline_id: int, execution: Execution, tail: int
) -> Steps[FailureDetails]:
    failed = execution.failed_action
    if failed is None or failed.action_execution_id is None:
        return FailureDetails(failed_action=None, error_message=None, log_tail=[])
    details = FailureDetails(failed_action=failed.name, error_message=failed.error_message, log_tail=[])
    if failed.error_message is None:
        full: ActionExecution = yield api.get_action_execution(
            workspace, project_name, pipeline_id, execution.id, failed.action_execution_id
        )
        details["error_message"] = full.error_message
    if tail > 0:
        steps = _log_steps(api, workspace, project_name, pipeline_id, execution.id, failed.action_execution_id, tail)
        details["log_tail"] = yield from steps
    return details


def _find_steps(api: BuddyApi, workspace: str | None, project_name: str, wanted: int | str) -> Steps[Pipeline]:
    try:
        ref = pipeline_ref(wanted)
    except ValueError as exc:
        raise BuddyConfigurationError(str(exc)) from None
    if isinstance(ref, int):
        pipeline: Pipeline = yield api.get_pipeline(workspace, project_name, ref)
        return pipeline
    try:
        found: IdentifierLookup | None = yield api.lookup_identifiers(workspace, project=project_name, pipeline=ref)
    except (BuddyNotFoundError, BuddyPermissionError, BuddyApiError):
        # not an identifier (a display name), or a Buddy (or token) without the lookup: list and match instead
        found = None
    if found is not None and found.pipeline_id is not None:
        return Pipeline(id=found.pipeline_id, identifier=ref)
    pipelines: list[Pipeline] = yield from walk_pages(lambda page: api.list_pipelines_page(workspace, project_name, page, 50), None)
    return _match_pipeline(pipelines, ref, project_name)


def answer_wait_steps(
    api: BuddyApi,
    workspace: str | None,
    project_name: str,
    pipeline_id: int,
    execution_id: int,
    wait_status: str | None,
    variables: list[Variable] | None,
    action_execution_id: str | int | None,
) -> Steps[WaitAnswer]:
    """
    The steps of answering a wait (:meth:`BuddyHook.answer_wait`): the operation the wait takes, then, when Buddy refuses
    it (a 4xx) and the wait has a second reading (:data:`~airflow_provider_buddy.models.buddy_status.APPROVE_OPERATIONS`),
    that one. The first refusal is raised when every operation was refused.
    """
    first_refusal: BuddyApiError | None = None
    operations = approve_operations(wait_status)
    for operation in operations:
        answers = variables if operation in VARIABLES_OPERATIONS else None
        try:
            execution: Execution = yield api.approve_execution(
                workspace, project_name, pipeline_id, execution_id, answers, action_execution_id, operation
            )
        except BuddyApiError as exc:
            first_refusal = first_refusal or exc
            continue
        return WaitAnswer(execution, operation)
    assert first_refusal is not None
    raise first_refusal


def _match_pipeline(pipelines: list[Pipeline], wanted: str, project_name: str) -> Pipeline:
    for pipeline in pipelines:
        if pipeline.identifier == wanted:
            return pipeline
    named = [p for p in pipelines if p.name == wanted]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise BuddyConfigurationError(
            f"pipeline_id {wanted!r}: {len(named)} pipelines in project {project_name!r} have that name "
            f"(ids {[p.id for p in named]}); use the numeric id or the identifier"
        )
    known = ", ".join(sorted(f"{p.identifier or p.id} ({p.name})" for p in pipelines)) or "none"
    raise BuddyNotFoundError(
        f"pipeline_id {wanted!r}: no pipeline in project {project_name!r} has that identifier or name (Buddy's identifier "
        f"lookup did not know it either). Pipelines listed there: {known}. A pipeline hidden by its visibility settings is "
        "not listed: give its identifier or numeric id",
        resource="pipeline",
    )
