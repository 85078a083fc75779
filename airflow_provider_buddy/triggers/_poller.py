"""One poller per triggerer event loop, shared by every Buddy trigger in it.

- one pooled ``httpx.AsyncClient`` per connection (no new TCP/TLS handshake per poll);
- a bound on requests in flight, so a thousand triggers waking together queue here, cheaply,
  instead of inside httpcore's pool;
- one request per execution per interval, however many triggers wait on it: a read younger than
  the caller's ``max_age`` is shared, and a read already in flight is awaited, not repeated.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook, buddy_settings
from airflow_provider_buddy.hooks.buddy_api import BUDDY_ERRORS, MEDIA_TYPE_HEADERS
from airflow_provider_buddy.models.buddy import Execution

MAX_IN_FLIGHT = 10
SETTINGS_TTL = 300.0

ExecutionKey = tuple[str, str | None, str, int, int]


class ExecutionPoller:
    """
    Shared reads of Buddy executions for all triggers of one event loop.

    :param max_in_flight: the most requests sent at once.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ExecutionPoller] = weakref.WeakKeyDictionary()

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._gate = asyncio.Semaphore(max_in_flight)
        self._clients: dict[tuple[str, str, float], httpx.AsyncClient] = {}
        self._hooks: dict[str, tuple[float, BuddyHook]] = {}
        self._in_flight: dict[ExecutionKey, asyncio.Future[Execution]] = {}
        self._fresh: dict[ExecutionKey, tuple[float, Execution]] = {}
        self._users = 0
        self.requests_sent = 0

    @classmethod
    def for_running_loop(cls) -> ExecutionPoller:
        """The poller of the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls()
        return poller

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[ExecutionPoller]:
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

    async def hook(self, conn_id: str) -> BuddyHook:
        """A hook for ``conn_id`` on the shared client; the connection is read asynchronously, once per TTL."""
        now = time.monotonic()
        cached = self._hooks.get(conn_id)
        if cached is not None and now - cached[0] < SETTINGS_TTL:
            return cached[1]
        settings = buddy_settings(await BuddyHook.aget_connection(conn_id))
        client = self._clients.get(settings.pool_key)
        if client is None:
            core = HttpCore(settings, BUDDY_ERRORS, extra_headers=MEDIA_TYPE_HEADERS)
            client = self._clients[settings.pool_key] = httpx.AsyncClient(**core.client_kwargs())
        hook = BuddyHook(conn_id, settings=settings, async_client=client, retry_log_level=logging.DEBUG)
        self._hooks[conn_id] = (now, hook)
        return hook

    async def get_execution(
        self, conn_id: str, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, *, max_age: float
    ) -> Execution:
        """
        The execution, read at most once per ``max_age`` seconds for all callers.

        :param max_age: a shared read younger than this is returned as is.
        """
        key: ExecutionKey = (conn_id, workspace, project_name, pipeline_id, execution_id)
        now = time.monotonic()
        fresh = self._fresh.get(key)
        if fresh is not None and now - fresh[0] < max_age:
            return fresh[1]
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Execution] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            hook = await self.hook(conn_id)
            async with self._gate:
                self.requests_sent += 1
                execution = await hook.aget_execution(project_name, pipeline_id, execution_id, workspace=workspace)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: other waiters may not exist
            raise
        else:
            self._fresh[key] = (time.monotonic(), execution)
            future.set_result(execution)
            return execution
        finally:
            del self._in_flight[key]

    def forget(self, conn_id: str, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> None:
        """Drop the shared read of one execution (after changing it, so the next read is fresh)."""
        self._fresh.pop((conn_id, workspace, project_name, pipeline_id, execution_id), None)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and tests."""
        return {"requests_sent": self.requests_sent, "clients": len(self._clients), "users": self._users}
