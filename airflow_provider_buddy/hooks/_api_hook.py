"""What an API hook of this provider does besides its endpoints: read the connection once (sync or
async), keep one pooled client per mode (or use a shared async one), and send described calls through
:class:`HttpCore`. Service hooks subclass it and add their methods.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from airflow.sdk import BaseHook

from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import ApiCall, HttpCore, Page

if TYPE_CHECKING:
    from airflow.sdk import Connection

T = TypeVar("T")


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

    def _http(self, settings: ClientSettings) -> HttpCore:
        if self._core is None or self._core.settings is not settings:
            self._core = self.make_core(settings, logger=self.log, retry_log_level=self._retry_log_level)
        return self._core

    def get_conn(self) -> httpx.Client:
        """The hook's pooled sync client."""
        if self._client is None:
            self._client = httpx.Client(**self._http(self.settings).client_kwargs())
        return self._client

    async def aget_conn(self) -> httpx.AsyncClient:
        """The hook's (or the shared) pooled async client."""
        if self._aclient is None:
            self._aclient = httpx.AsyncClient(**self._http(await self.asettings()).client_kwargs())
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
        return self._http(self.settings).send(self.get_conn(), call)

    async def acall(self, call: ApiCall[T]) -> T:
        """Send one described call (async)."""
        settings = await self.asettings()
        return await self._http(settings).asend(await self.aget_conn(), call)

    # ---- paging ----------------------------------------------------------------------------------
    def walk(self, build: Callable[[int], ApiCall[Page]], max_items: int | None = None) -> list[Any]:
        """Every item of a list endpoint, page by page (``build(page)`` describes one page), up to ``max_items``."""
        found: list[Any] = []
        page = 1
        while True:
            result = self.call(build(page))
            found.extend(result.items)
            if _done(result, found, max_items):
                return found[:max_items] if max_items is not None else found
            page += 1

    async def awalk(self, build: Callable[[int], ApiCall[Page]], max_items: int | None = None) -> list[Any]:
        """Async :meth:`walk`."""
        found: list[Any] = []
        page = 1
        while True:
            result = await self.acall(build(page))
            found.extend(result.items)
            if _done(result, found, max_items):
                return found[:max_items] if max_items is not None else found
            page += 1


def _done(result: Page, found: list[Any], max_items: int | None) -> bool:
    return not result.more or not result.items or (max_items is not None and len(found) >= max_items)
