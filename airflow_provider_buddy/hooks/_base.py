"""What an API hook of this provider does besides its endpoints: read the connection once (sync or
async), keep one pooled client per mode (or use a shared async one), and send described calls through
:class:`HttpCore`. Service hooks subclass it and add their methods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from airflow.sdk import BaseHook

from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import ApiCall, HttpCore, Page

if TYPE_CHECKING:
    from airflow.sdk import Connection

T = TypeVar("T")

Steps = Generator[ApiCall[Any], Any, T]
"""An algorithm of several API calls, written once for both modes: it yields each call and is sent its answer."""


class ApiHookBase(BaseHook):
    """
    Settings, clients and call sending shared by the service hooks.

    :param conn_id: the Airflow connection to use.
    :param settings: ready settings, bypassing the connection lookup (triggers that read it asynchronously).
    :param async_client: a shared ``httpx.AsyncClient`` to use instead of the hook's own.
    :param retry_log_level: the level each retry is logged at.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        settings: ClientSettings | None = None,
        async_client: httpx.AsyncClient | None = None,
        retry_log_level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        self._conn_id = conn_id
        self._settings = settings
        self._retry_log_level = retry_log_level
        self._core: HttpCore | None = None
        self._client: httpx.Client | None = None
        self._aclient = async_client
        self._owns_aclient = async_client is None

    # ---- what a service defines ----------------------------------------------------------------
    def read_settings(self, conn: Connection) -> ClientSettings:
        """Turn the Airflow connection into settings, raising the service's configuration error."""
        raise NotImplementedError

    def make_core(self, settings: ClientSettings, *, logger: Any, retry_log_level: int) -> HttpCore:
        """The HTTP core for ``settings`` (the service's error family and headers)."""
        raise NotImplementedError

    # ---- settings and clients ----------------------------------------------------------------
    @property
    def settings(self) -> ClientSettings:
        """The connection's settings, read once."""
        if self._settings is None:
            self._settings = self.read_settings(self.get_connection(self._conn_id))
        return self._settings

    async def asettings(self) -> ClientSettings:
        """The connection's settings, read once without blocking the event loop."""
        if self._settings is None:
            self._settings = self.read_settings(await self.aget_connection(self._conn_id))
        return self._settings

    def core(self, settings: ClientSettings) -> HttpCore:
        """The HTTP core for ``settings`` (built once per settings)."""
        if self._core is None or self._core.settings is not settings:
            self._core = self.make_core(settings, logger=self.log, retry_log_level=self._retry_log_level)
        return self._core

    def share_async_client(self, client: httpx.AsyncClient) -> None:
        """Send async calls through ``client`` (a pool shared with other hooks), which this hook never closes."""
        self._aclient = client
        self._owns_aclient = False

    def get_conn(self) -> httpx.Client:
        """The hook's pooled sync client."""
        if self._client is None:
            self._client = httpx.Client(**self.core(self.settings).client_kwargs())
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's (or the shared) pooled async client."""
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(**self.core(await self.asettings()).client_kwargs())
        return self._aclient

    def close(self) -> None:
        """Close the sync client."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close the async client, unless it is a shared one."""
        if self._aclient is not None and self._owns_aclient:
            await self._aclient.aclose()
        if self._owns_aclient:
            self._aclient = None

    def call(self, call: ApiCall[T]) -> T:
        """Send one described call (sync)."""
        return self.core(self.settings).send(self.get_conn(), call)

    async def acall(self, call: ApiCall[T]) -> T:
        """Send one described call (async)."""
        settings = await self.asettings()
        return await self.core(settings).asend(await self.aget_conn(), call)

    # ---- several calls, one algorithm for both modes ----------------------------------------------
    def run_steps(self, steps: Steps[T]) -> T:
        """
        Drive ``steps`` (a generator that yields :class:`ApiCall` s and is sent each answer) with the sync client:
        an algorithm of several calls is written once, as a generator, for both modes. An error raised by a call is
        thrown into the generator, which may handle it.
        """
        answer: Any = None
        error: BaseException | None = None
        while True:
            try:
                call = steps.throw(error) if error is not None else steps.send(answer)
            except StopIteration as done:
                return cast("T", done.value)
            try:
                answer, error = self.call(call), None
            except Exception as exc:
                answer, error = None, exc

    async def arun_steps(self, steps: Steps[T]) -> T:
        """Async :meth:`run_steps`."""
        answer: Any = None
        error: BaseException | None = None
        while True:
            try:
                call = steps.throw(error) if error is not None else steps.send(answer)
            except StopIteration as done:
                return cast("T", done.value)
            try:
                answer, error = await self.acall(call), None
            except Exception as exc:
                answer, error = None, exc

    # ---- paging ----------------------------------------------------------------------------------
    def walk(self, build: Callable[[int], ApiCall[Page]], max_items: int | None = None) -> list[Any]:
        """Every item of a list endpoint, page by page (``build(page)`` describes one page), up to ``max_items``."""
        return self.run_steps(walk_pages(build, max_items))

    async def awalk(self, build: Callable[[int], ApiCall[Page]], max_items: int | None = None) -> list[Any]:
        """Async :meth:`walk`."""
        return await self.arun_steps(walk_pages(build, max_items))


def walk_pages(build: Callable[[int], ApiCall[Page]], max_items: int | None) -> Steps[list[Any]]:
    """The steps of walking a list endpoint's pages (see :meth:`ApiHookBase.run_steps`)."""
    found: list[Any] = []
    page = 1
    while True:
        result: Page = yield build(page)
        found.extend(result.items)
        if not result.more or not result.items or (max_items is not None and len(found) >= max_items):
            return found[:max_items] if max_items is not None else found
        page += 1
