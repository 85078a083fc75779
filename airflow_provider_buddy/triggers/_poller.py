"""One poller per triggerer event loop, shared by every trigger of this provider in it.

- one pooled ``httpx.AsyncClient`` per API account (no new TCP/TLS handshake per poll);
- a bound on requests in flight, so a thousand triggers waking together queue here, cheaply,
  instead of inside the connection pool;
- one request per object per interval, however many triggers wait on it: a read younger than the
  caller's ``max_age`` is shared, and a read already in flight is awaited, not repeated;
- each object keeps the place in the interval its first read got: when a thousand triggers wake in the
  same millisecond, their reads go out spread the way the first round spread them, not as a burst,
  and no read of an object goes out earlier in its trigger's interval than the first one did (so an
  object that changes a whole number of intervals after the first read is seen at once, not one
  interval late);
- the client sends through :class:`AiohttpTransport` (one ``aiohttp`` session and connector) instead of
  httpcore + anyio: the same ``httpx`` API, errors and retries above it, at a fraction of the CPU per
  request (see ``benchmarks/README.md``). Requests that need a proxy (from the environment) use httpx's
  own transport; so does everything when ``[buddy] http_transport = httpx``.

Service-neutral: callers give a hook class, a key and a coroutine factory; the Buddy and GoRules triggers use it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from airflow_provider_buddy.hooks._base import ApiHookBase
from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.triggers._transport import AiohttpTransport, PollingClient, aiohttp_transport_allowed

SETTINGS_TTL = 300.0
MAX_PACING_SHARE = 0.5
"""A read is held back by at most this share of its ``max_age`` to keep its place in the interval."""

T = TypeVar("T")
H = TypeVar("H")
A = TypeVar("A", bound=ApiHookBase)


def max_in_flight() -> int:
    """
    The most reads one triggerer sends at once: ``[buddy] triggerer_max_in_flight`` (10 by default).

    Each read in flight holds one pooled connection, so this is also the most connections per account.
    Ten keep up with a thousand triggers polling every 10 s while an answer takes under 100 ms; over a
    slower network, raise it (throughput is about ``max_in_flight / round-trip time`` reads per second).
    """
    from airflow_provider_buddy.utils.settings import TRIGGERER_MAX_IN_FLIGHT, read_int

    return read_int(TRIGGERER_MAX_IN_FLIGHT)


class _Gate:
    """
    At most ``size`` holders at once, first come first served. Unlike ``asyncio.Semaphore`` (whose
    ``acquire()`` calls ``locked()``, which scans every waiter on CPython 3.11), taking and handing over a
    place costs the same with a thousand waiting as with none.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if not self.try_take():
            await self.take()

    def try_take(self) -> bool:
        """Take a place at once if one is free and nobody waits (no coroutine, no future)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Wait in line for a place."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the place was handed over just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *_: object) -> None:
        self._release()

    def release(self) -> None:
        """Give the place back (to the next in line, if any)."""
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the place goes straight to the next in line
                return
        self._free += 1


class SharedPoller:
    """
    Shared, coalesced, paced reads for all triggers of one event loop.

    :param max_in_flight: the most reads sent at once.
    """

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedPoller] = weakref.WeakKeyDictionary()

    def __init__(self, max_in_flight: int = 10) -> None:
        self._gate = _Gate(max_in_flight)
        self._clients: dict[tuple[str, str, float], httpx.AsyncClient] = {}
        self._hooks: dict[Hashable, tuple[float, Any]] = {}
        self._building: dict[Hashable, asyncio.Future[Any]] = {}
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._fresh: dict[Hashable, tuple[float, Any]] = {}
        self._lag: dict[Hashable, float] = {}
        self._transports: list[AiohttpTransport] = []
        self._users = 0
        self.requests_sent = 0

    @classmethod
    def for_running_loop(cls) -> SharedPoller:
        """The poller of the running event loop, created on first use."""
        loop = asyncio.get_running_loop()
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(max_in_flight())
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
        self._transports.clear()
        self._hooks.clear()
        self._fresh.clear()
        self._lag.clear()
        for client in clients:
            await client.aclose()

    def client(self, settings: ClientSettings, core: HttpCore) -> httpx.AsyncClient:
        """The pooled client for ``settings`` (one per URL / TLS / timeout, tokens travel per request)."""
        client = self._clients.get(settings.pool_key)
        if client is None:
            kwargs = core.client_kwargs()
            if aiohttp_transport_allowed(settings.base_url):
                transport = AiohttpTransport(verify=kwargs.pop("verify", True), limits=kwargs.pop("limits", None))
                self._transports.append(transport)
                client = self._clients[settings.pool_key] = PollingClient(transport=transport, **kwargs)
            else:
                client = self._clients[settings.pool_key] = httpx.AsyncClient(**kwargs)
        return client

    def cached_hook(self, key: Hashable) -> Any:
        """The hook cached under ``key`` while younger than :data:`SETTINGS_TTL`, else None (polls take it without a coroutine)."""
        cached = self._hooks.get(key)
        if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL:
            return cached[1]
        return None

    async def hook(self, key: Hashable, build: Callable[[], Awaitable[H]]) -> H:
        """A hook cached under ``key`` for :data:`SETTINGS_TTL` seconds (so connection edits are picked up).

        Built once however many triggers ask at the same time (a thousand starting together read the
        connection once)."""
        now = time.monotonic()
        cached = self._hooks.get(key)
        if cached is not None and now - cached[0] < SETTINGS_TTL:
            return cached[1]  # type: ignore[no-any-return]
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            hook = await build()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no other waiter
            raise
        else:
            self._hooks[key] = (time.monotonic(), hook)
            future.set_result(hook)
            return hook
        finally:
            del self._building[key]

    async def shared_hook(self, hook_class: type[A], conn_id: str) -> A:
        """A ``hook_class`` hook for ``conn_id`` sending through this poller's pooled client, its connection read
        asynchronously; cached as :meth:`hook` caches."""

        cached = self.cached_hook((hook_class.__name__, conn_id))
        if cached is not None:
            return cached  # type: ignore[no-any-return]

        async def build() -> A:
            hook = hook_class(conn_id, retry_log_level=logging.DEBUG)
            settings = await hook.asettings()
            hook.share_async_client(self.client(settings, hook.core(settings)))
            return hook

        return await self.hook((hook_class.__name__, conn_id), build)

    async def read(self, key: Hashable, fetch: Callable[[], Awaitable[T]], *, max_age: float, since: float | None = None) -> T:
        """
        ``fetch()``'s result, shared by every caller asking for ``key`` within ``max_age`` seconds.

        :param key: what is read (an object of one account).
        :param fetch: sends the request.
        :param max_age: a shared read younger than this is returned as is.
        :param since: when the caller's poll began (``loop.time()``; default now): the pacing is
            measured from there, so work done before calling (building a hook) counts as part of it.
        """
        loop = asyncio.get_running_loop()
        called = loop.time() if since is None else since
        fresh = self._fresh.get(key)
        if fresh is not None and called - fresh[0] < max_age:
            return fresh[1]  # type: ignore[no-any-return]
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = loop.create_future()
        self._in_flight[key] = future
        try:
            lag = self._lag.get(key)
            if lag is not None:
                # Keep this object's place in the interval: go out as late after the caller's wake-up as
                # the first read did (bounded), which spreads a burst the way the first round spread it.
                hold = min(lag, max_age * MAX_PACING_SHARE) - (loop.time() - called)
                if hold > 0:
                    await asyncio.sleep(hold)
            gate = self._gate
            if not gate.try_take():  # a poll per read: no async-with coroutines when a place is free
                await gate.take()
            try:
                self.requests_sent += 1
                result = await fetch()
            finally:
                gate.release()
            if lag is None:
                # The first read's place: from the caller's wake-up to the answer (so a later read never
                # reaches the server earlier in its interval than this one did).
                self._lag[key] = loop.time() - called
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no other waiter
            raise
        else:
            # Dated from when its poll began, not from when the answer came: a caller on the same schedule
            # one interval later reads anew however long this read waited for its turn.
            self._fresh[key] = (called, result)
            future.set_result(result)
            return result
        finally:
            del self._in_flight[key]

    def forget(self, key: Hashable) -> None:
        """Drop the shared read of ``key`` (after changing the object, so the next read is fresh)."""
        self._fresh.pop(key, None)
        self._lag.pop(key, None)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and tests."""
        opened = sum(t.connections_opened for t in self._transports)
        return {"requests_sent": self.requests_sent, "clients": len(self._clients), "users": self._users, "connections_opened": opened}
