"""``GoRulesHook``: the GoRules BRMS API (deployment workflow runs, releases, environments), sync and async."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_buddy.exceptions import GoRulesConfigurationError, GoRulesError
from airflow_provider_buddy.hooks import _gorules_api as api
from airflow_provider_buddy.hooks._base import ApiHookBase
from airflow_provider_buddy.hooks._connection import ClientSettings, settings_from_connection
from airflow_provider_buddy.hooks._forms import GORULES_FORM, field_behaviour, form_widgets
from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.models.gorules import DeployResult, Environment, Release, Run

if TYPE_CHECKING:
    from airflow.sdk import Connection


def gorules_settings(conn: Connection) -> ClientSettings:
    """
    Read a ``gorules`` connection; raises :class:`GoRulesConfigurationError` naming the field that is wrong.

    The host is the BRMS URL (cloud ``https://{customer}.gorules.io`` or self-hosted), with or
    without the trailing ``/api``; the API root always ends in ``/api``.

    :param conn: the Airflow connection.
    """
    if not (conn.host or "").strip():
        raise GoRulesConfigurationError(
            f"Connection {conn.conn_id!r}: the host (BRMS URL) is empty; set it to {api.CLOUD_HINT} or your self-hosted BRMS URL"
        )
    try:
        settings = settings_from_connection(
            conn_id=conn.conn_id,
            host=conn.host,
            port=conn.port,
            token=conn.password,
            account=None,
            extra=conn.extra,
            default_url=api.CLOUD_HINT,
            account_label=None,
        )
    except ValueError as exc:
        raise GoRulesConfigurationError(str(exc)) from None
    return api.with_api_root(settings)


def gorules_core(settings: ClientSettings, *, logger: Any = None, retry_log_level: int = logging.WARNING) -> HttpCore:
    """The HTTP core for a GoRules account (its error family, its 408 retry rule)."""
    return api.GoRulesHttpCore(settings, api.GORULES_ERRORS, logger=logger, retry_log_level=retry_log_level)


class GoRulesHook(ApiHookBase):
    """
    Talks to the GoRules BRMS REST API. Every method has an async twin prefixed ``a``.

    Connection fields: host = BRMS URL (``https://acme.gorules.io`` or a self-hosted URL, with or
    without ``/api``), password = personal access token (one per BRMS instance), extra =
    ``{"timeout": 30, "verify": true, "max_retries": 5}``. Same retry, error and secret rules as the
    Buddy hook: reads are retried on network errors, 408, 429 and 5xx; a deploy is never sent twice.

    :param gorules_conn_id: the Airflow connection to use.
    :param settings: ready settings, bypassing the connection lookup (used by triggers).
    :param async_client: a shared ``httpx.AsyncClient`` to use instead of the hook's own.
    :param retry_log_level: the level each retry is logged at.
    """

    conn_name_attr = "gorules_conn_id"
    default_conn_name = "gorules_default"
    conn_type = "gorules"
    hook_name = "GoRules BRMS"

    def __init__(
        self,
        gorules_conn_id: str = default_conn_name,
        *,
        settings: ClientSettings | None = None,
        async_client: httpx.AsyncClient | None = None,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        super().__init__(gorules_conn_id, settings=settings, async_client=async_client, retry_log_level=retry_log_level)
        self.gorules_conn_id = gorules_conn_id

    def __repr__(self) -> str:
        return f"GoRulesHook(gorules_conn_id={self.gorules_conn_id!r})"

    def read_settings(self, conn: Connection) -> ClientSettings:
        """Read the ``gorules`` connection."""
        return gorules_settings(conn)

    def make_core(self, settings: ClientSettings, *, logger: Any, retry_log_level: int) -> HttpCore:
        """The GoRules HTTP core."""
        return gorules_core(settings, logger=logger, retry_log_level=retry_log_level)

    # ---- the Airflow connection form ---------------------------------------------------------
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the form on Airflow 3.1 (3.2+ reads them from the provider info)."""
        return form_widgets(GORULES_FORM)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide the fields GoRules does not use and name the others as the BRMS does (Airflow 3.2+ reads the same
        form from the provider info)."""
        return field_behaviour(GORULES_FORM)

    # ---- the UI's Test button ----------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check the URL and the token with one small read (the first page of projects)."""
        try:
            page = self.call(api.list_projects_page(1, 1))
        except GoRulesError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        seen = "at least one project" if page.items else "no project yet"
        return True, f"Connected to GoRules BRMS at {self.settings.base_url} (the token sees {seen})"

    # ---- runs ------------------------------------------------------------------------------------
    def list_runs(self, project_id: str, *, per_page: int = api.DEFAULT_PER_PAGE, max_items: int | None = None) -> list[Run]:
        """
        The project's deployment workflow runs, walking ``paginate`` pages.

        :param project_id: the project's id.
        :param per_page: items asked per page.
        :param max_items: stop after this many (None walks every page).
        """
        return self.walk(lambda page: api.list_runs_page(project_id, page, per_page), max_items)

    async def alist_runs(self, project_id: str, *, per_page: int = api.DEFAULT_PER_PAGE, max_items: int | None = None) -> list[Run]:
        """Async :meth:`list_runs`."""
        return await self.awalk(lambda page: api.list_runs_page(project_id, page, per_page), max_items)

    def get_run(self, project_id: str, run_id: str) -> Run:
        """One run, with its jobs."""
        return self.call(api.get_run(project_id, run_id))

    async def aget_run(self, project_id: str, run_id: str) -> Run:
        """Async :meth:`get_run`."""
        return await self.acall(api.get_run(project_id, run_id))

    def cancel_run(self, project_id: str, run_id: str, comment: str) -> Run:
        """
        Cancel an in-progress or waiting run. ``comment`` is required by the API: an empty or
        missing one raises :class:`GoRulesConfigurationError` before anything is sent.

        :param project_id: the project's id.
        :param run_id: the run's id.
        :param comment: why it is cancelled (shown in the BRMS).
        """
        return self.call(api.cancel_run(project_id, run_id, comment))

    async def acancel_run(self, project_id: str, run_id: str, comment: str) -> Run:
        """Async :meth:`cancel_run`."""
        return await self.acall(api.cancel_run(project_id, run_id, comment))

    # ---- releases --------------------------------------------------------------------------------
    def deploy_release(self, project_id: str, release_id: str, environment_id: str, comment: str | None = None) -> DeployResult:
        """
        Deploy a release to one environment ("optionally creating a change request if approvals are required").
        The POST is never sent twice once it may have reached the BRMS. The answer's shape is not documented:
        :class:`DeployResult` holds the run, a change request, or an id when the answer carried them.

        :param project_id: the project's id.
        :param release_id: the release to deploy.
        :param environment_id: the target environment's id.
        :param comment: a note for the deployment.
        """
        return self.call(api.deploy_release(project_id, release_id, environment_id, comment))

    async def adeploy_release(self, project_id: str, release_id: str, environment_id: str, comment: str | None = None) -> DeployResult:
        """Async :meth:`deploy_release`."""
        return await self.acall(api.deploy_release(project_id, release_id, environment_id, comment))

    def list_releases(self, project_id: str, *, per_page: int = api.DEFAULT_PER_PAGE, max_items: int | None = None) -> list[Release]:
        """The project's releases, walking ``paginate`` pages."""
        return self.walk(lambda page: api.list_releases_page(project_id, page, per_page), max_items)

    async def alist_releases(self, project_id: str, *, per_page: int = api.DEFAULT_PER_PAGE, max_items: int | None = None) -> list[Release]:
        """Async :meth:`list_releases`."""
        return await self.awalk(lambda page: api.list_releases_page(project_id, page, per_page), max_items)

    def get_release(self, project_id: str, release_id: str) -> Release:
        """One release, with its change requests (``changeRequests: [{id, status, environment}]``)."""
        return self.call(api.get_release(project_id, release_id))

    async def aget_release(self, project_id: str, release_id: str) -> Release:
        """Async :meth:`get_release`."""
        return await self.acall(api.get_release(project_id, release_id))

    # ---- environments ----------------------------------------------------------------------------
    def list_environments(self, project_id: str) -> list[Environment]:
        """
        The project's environments (one call; the API does not page them): id, key, name, approval mode, the release
        each runs now, change requests.

        :param project_id: the project's id.
        """
        return self.call(api.list_environments(project_id))

    async def alist_environments(self, project_id: str) -> list[Environment]:
        """Async :meth:`list_environments`."""
        return await self.acall(api.list_environments(project_id))
