"""One poller per triggerer event loop, shared by every trigger of this provider in it.

- one pooled ``httpx.AsyncClient`` per API account (no new TCP/TLS handshake per poll);
- a bound on requests in flight, so a thousand triggers waking together queue here, cheaply,
  instead of inside httpcore's pool;
- one request per object per interval, however many triggers wait on it: a read younger than the
  caller's ``max_age`` is shared, and a read already in flight is awaited, not repeated.

Service-neutral: callers give a key and a coroutine factory; the Buddy and GoRules triggers use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook, buddy_settings
from airflow_provider_buddy.hooks.buddy_api import BUDDY_ERRORS, MEDIA_TYPE_HEADERS
from airflow_provider_buddy.models.buddy import Execution

MAX_IN_FLIGHT = 10
SETTINGS_TTL = 300.0

T = TypeVar("T")
H = TypeVar("H")


class SharedPoller:
    """
    Shared, coalesced reads for all triggers of one event loop.

    :param max_in_flight: the most requests sent at once.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedPoller] = weakref.WeakKeyDictionary()

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._gate = asyncio.Semaphore(max_in_flight)
        self._clients: dict[tuple[str, str, float], httpx.AsyncClient] = {}
        self._hooks: dict[Hashable, tuple[float, Any]] = {}
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._fresh: dict[Hashable, tuple[float, Any]] = {}
        self._users = 0
        self.requests_sent = 0

    @classmethod
    def for_running_loop(cls) -> SharedPoller:
        """The poller of the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls()
        return poller

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[SharedPoller]:
        """Hold the poller while a trigger runs; the last one out closes the pooled clients."""
        self._users += 1
        try:
            yield self
        finally:
            self._users -= 1
            if self._users == 0:
                await self.close()

    async def close(self) -> None:
        """Close every pooled client and forget cached reads."""
        clients, self._clients = list(self._clients.values()), {}
        self._hooks.clear()
        self._fresh.clear()
        for client in clients:
            await client.aclose()

    def client(self, settings: ClientSettings, core: HttpCore) -> httpx.AsyncClient:
        """The pooled client for ``settings`` (one per URL / TLS / timeout, tokens travel per request)."""
        client = self._clients.get(settings.pool_key)
        if client is None:
            client = self._clients[settings.pool_key] = httpx.AsyncClient(**core.client_kwargs())
        return client

    async def hook(self, key: Hashable, build: Callable[[], Awaitable[H]]) -> H:
        """A hook cached under ``key`` for :data:`SETTINGS_TTL` seconds (so connection edits are picked up)."""
        now = time.monotonic()
        cached = self._hooks.get(key)
        if cached is not None and now - cached[0] < SETTINGS_TTL:
            return cached[1]  # type: ignore[no-any-return]
        hook = await build()
        self._hooks[key] = (now, hook)
        return hook

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]], *, max_age: float) -> T:
        """
        ``fetch()``'s result, shared by every caller asking for ``key`` within ``max_age`` seconds.

        :param key: what is read (an object of one account).
        :param fetch: sends the request.
        :param max_age: a shared read younger than this is returned as is.
        """
        fresh = self._fresh.get(key)
        if fresh is not None and time.monotonic() - fresh[0] < max_age:
            return fresh[1]  # type: ignore[no-any-return]
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            async with self._gate:
                self.requests_sent += 1
                result = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no other waiter
            raise
        else:
            self._fresh[key] = (time.monotonic(), result)
            future.set_result(result)
            return result
        finally:
            del self._in_flight[key]

    def forget(self, key: Hashable) -> None:
        """Drop the shared read of ``key`` (after changing the object, so the next read is fresh)."""
        self._fresh.pop(key, None)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and tests."""
        return {"requests_sent": self.requests_sent, "clients": len(self._clients), "users": self._users}


async def buddy_hook(poller: SharedPoller, conn_id: str) -> BuddyHook:
    """A Buddy hook for ``conn_id`` on the poller's shared client; the connection is read asynchronously."""

    async def build() -> BuddyHook:
        settings = buddy_settings(await BuddyHook.aget_connection(conn_id))
        core = HttpCore(settings, BUDDY_ERRORS, extra_headers=MEDIA_TYPE_HEADERS)
        return BuddyHook(conn_id, settings=settings, async_client=poller.client(settings, core), retry_log_level=logging.DEBUG)

    return await poller.hook(("buddy", conn_id), build)


def execution_key(conn_id: str, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> Hashable:
    """The shared-read key of one Buddy execution."""
    return ("buddy", conn_id, workspace, project_name, pipeline_id, execution_id)


async def read_execution(
    poller: SharedPoller, conn_id: str, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, *, max_age: float
) -> Execution:
    """One Buddy execution, read at most once per ``max_age`` for all triggers waiting on it."""
    hook = await buddy_hook(poller, conn_id)

    async def fetch() -> Execution:
        return await hook.aget_execution(project_name, pipeline_id, execution_id, workspace=workspace)

    return await poller.read(execution_key(conn_id, workspace, project_name, pipeline_id, execution_id), fetch, max_age=max_age)
