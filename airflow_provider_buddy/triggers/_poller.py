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
- the client sends through :class:`Http11Transport`, a small keep-alive HTTP/1.1 pool on asyncio's
  own TLS, instead of httpcore + anyio: the same ``httpx`` API, errors and retries above it, at about
  a third of the CPU per request (see ``benchmarks/README.md``). Requests that need a proxy (from the
  environment) use httpx's own transport; so does everything when ``BUDDY_HTTP_TRANSPORT=httpx``.

Service-neutral: callers give a key and a coroutine factory; the Buddy and GoRules triggers use it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import ssl
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import ApiCall, HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook, buddy_settings
from airflow_provider_buddy.hooks.buddy_api import BUDDY_ERRORS, MEDIA_TYPE_HEADERS, BuddyApi
from airflow_provider_buddy.models.buddy import Execution

MAX_IN_FLIGHT = 10
MAX_PREPARED_CALLS = 10_000
SETTINGS_TTL = 300.0
MAX_PACING_SHARE = 0.5
"""A read is held back by at most this share of its ``max_age`` to keep its place in the interval."""
TRANSPORT_ENV = "BUDDY_HTTP_TRANSPORT"
"""Set to ``httpx`` to send through httpx's own transport (httpcore) instead of :class:`Http11Transport`."""

T = TypeVar("T")
H = TypeVar("H")


class _Gate:
    """
    At most ``size`` holders at once, first come first served. Unlike ``asyncio.Semaphore`` (whose
    ``locked()`` scans every waiter on Python < 3.12), taking and handing over a place costs the same with
    a thousand waiting as with none.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
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

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._gate = _Gate(max_in_flight)
        self._clients: dict[tuple[str, str, float], httpx.AsyncClient] = {}
        self._hooks: dict[Hashable, tuple[float, Any]] = {}
        self._building: dict[Hashable, asyncio.Future[Any]] = {}
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        self._fresh: dict[Hashable, tuple[float, Any]] = {}
        self._lag: dict[Hashable, float] = {}
        self._transports: list[Http11Transport] = []
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
            if lean_transport_allowed(settings.base_url):
                transport = Http11Transport(verify=kwargs.pop("verify", True), limits=kwargs.pop("limits", None))
                self._transports.append(transport)
                client = self._clients[settings.pool_key] = LeanClient(transport=transport, **kwargs)
            else:
                client = self._clients[settings.pool_key] = httpx.AsyncClient(**kwargs)
        return client

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
        if fresh is not None and time.monotonic() - fresh[0] < max_age:
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
            async with self._gate:
                self.requests_sent += 1
                result = await fetch()
            if lag is None:
                # The first read's place: from the caller's wake-up to the answer (so a later read never
                # reaches the server earlier in its interval than this one did).
                self._lag[key] = loop.time() - called
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
        self._lag.pop(key, None)

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and tests."""
        opened = sum(t.connections_opened for t in self._transports)
        return {"requests_sent": self.requests_sent, "clients": len(self._clients), "users": self._users, "connections_opened": opened}


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


class _ExecutionReader:
    """The shortest road to one execution read: a Buddy connection's core, client and prepared calls."""

    def __init__(self, hook: BuddyHook, client: httpx.AsyncClient) -> None:
        settings = hook.settings
        self.core = HttpCore(settings, BUDDY_ERRORS, extra_headers=MEDIA_TYPE_HEADERS, logger=hook.log, retry_log_level=logging.DEBUG)
        self.client = client
        self.api = BuddyApi(settings.account)
        self.calls: dict[Hashable, ApiCall[Execution]] = {}

    async def read(self, key: Hashable, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int) -> Execution:
        call = self.calls.get(key)
        if call is None:
            if len(self.calls) >= MAX_PREPARED_CALLS:
                self.calls.clear()
            call = self.calls[key] = self.api.get_execution(workspace, project_name, pipeline_id, execution_id)
        return await self.core.asend(self.client, call)


async def read_execution(
    poller: SharedPoller, conn_id: str, workspace: str | None, project_name: str, pipeline_id: int, execution_id: int, *, max_age: float
) -> Execution:
    """One Buddy execution, read at most once per ``max_age`` for all triggers waiting on it."""
    since = asyncio.get_running_loop().time()
    key = execution_key(conn_id, workspace, project_name, pipeline_id, execution_id)

    async def build() -> _ExecutionReader:
        hook = await buddy_hook(poller, conn_id)
        return _ExecutionReader(hook, await hook.aget_conn())

    reader = await poller.hook(("buddy-reader", conn_id), build)

    def fetch() -> Awaitable[Execution]:
        return reader.read(key, workspace, project_name, pipeline_id, execution_id)

    return await poller.read(key, fetch, max_age=max_age, since=since)


# ---- the transport -------------------------------------------------------------------------------------
def lean_transport_allowed(base_url: str) -> bool:
    """
    Whether :class:`Http11Transport` may carry requests to ``base_url``: not when the environment routes
    them through a proxy (httpx's own transport does that), nor when ``BUDDY_HTTP_TRANSPORT=httpx``.

    :param base_url: the API base URL.
    """
    if os.environ.get(TRANSPORT_ENV, "").strip().lower() == "httpx":
        return False
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(url.host))


class _Disconnected(httpx.RemoteProtocolError):
    """The server closed the connection before any byte of the answer (a stale keep-alive connection)."""


class _Answer:
    """One parsed HTTP/1.1 response."""

    __slots__ = ("body", "headers", "keep_alive", "reason", "status")

    def __init__(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive

    def response(self) -> httpx.Response:
        """The answer as an httpx response (its body still encoded, as a transport returns it)."""
        return httpx.Response(
            self.status,
            headers=self.headers,
            stream=httpx.ByteStream(self.body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": self.reason},
        )


MAX_HEAD = 64 * 1024
_NO_BODY_STATUSES = frozenset({204, 304})


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the answer parsed as its bytes arrive."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[_Answer] | None = None
        self._head_method = False
        # the answer being read
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._keep_alive = True
        self._framing = ""  # "length", "chunked", "close" or "none"
        self._length = 0
        self._body_at = 0
        self._chunks: list[bytes] = []
        self._chunk_at = 0

    # ---- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection can't be trusted any more
            return
        self._buffer += data
        try:
            self._advance(eof=False)
        except httpx.TransportError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        self._lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    # ---- use ------------------------------------------------------------------------------------------
    async def exchange(self, payload: bytes, *, head_method: bool, read_timeout: float | None) -> _Answer:
        """Send one request and wait for its whole answer."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._reset()
        self._head_method = head_method
        waiter: asyncio.Future[_Answer] = loop.create_future()
        self._waiter = waiter
        self.transport.write(payload)
        timer = loop.call_later(read_timeout, self._timed_out) if read_timeout is not None else None
        try:
            return await waiter
        except BaseException:
            self.close()  # cancelled or failed mid-answer: the connection's state is unknown
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # ---- parsing --------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._buffer.clear()
        self._headers = None
        self._keep_alive = True
        self._framing = ""
        self._chunks = []
        self._chunk_at = 0

    def _timed_out(self) -> None:
        self._fail(httpx.ReadTimeout("timed out waiting for the answer"))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if not self._buffer and self._headers is None:
            self._waiter.set_exception(_Disconnected("the server closed the connection without answering"))
            return
        try:
            if not self._advance(eof=True):
                detail = f": {exc}" if exc is not None else ""
                self._waiter.set_exception(httpx.RemoteProtocolError(f"the server closed the connection in the middle of the answer{detail}"))
        except httpx.TransportError as error:
            self._fail(error)

    def _advance(self, *, eof: bool) -> bool:
        """Parse what has arrived; settle the waiter and return True once the answer is complete."""
        buffer = self._buffer
        while self._headers is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise httpx.RemoteProtocolError("the answer's header is too large")
                return False
            self._parse_head(bytes(buffer[:end]))
            del buffer[: end + 4]
            if 100 <= self._status < 200:  # an interim answer: the real one follows
                if self._status == 101:
                    raise httpx.RemoteProtocolError("unexpected protocol switch")
                self._headers = None
        if self._framing == "none":
            body = b""
        elif self._framing == "length":
            if len(buffer) < self._length:
                return False
            body = bytes(buffer[: self._length])
            del buffer[: self._length]
        elif self._framing == "chunked":
            if not self._read_chunks():
                return False
            body = b"".join(self._chunks)
        else:  # delimited by the end of the connection
            if not eof:
                return False
            body = bytes(buffer)
            buffer.clear()
        if buffer:  # more than one answer to one request
            self._keep_alive = False
        assert self._waiter is not None and self._headers is not None
        self._waiter.set_result(_Answer(self._status, self._reason, self._headers, body, self._keep_alive and not eof))
        return True

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        self._status = int(parts[1])
        self._reason = parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        length: bytes | None = None
        transfer: bytes | None = None
        connection = b""
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
            value = value.strip(b" \t")
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                if length is not None and length != value:
                    raise httpx.RemoteProtocolError("conflicting Content-Length headers")
                length = value
            elif lowered == b"transfer-encoding":
                transfer = value.lower() if transfer is None else transfer + b"," + value.lower()
            elif lowered == b"connection":
                connection += b"," + value.lower()
        self._headers = headers
        self._keep_alive = parts[0] == b"HTTP/1.1" and b"close" not in connection
        if self._head_method or self._status in _NO_BODY_STATUSES or 100 <= self._status < 200:
            self._framing = "none"
        elif transfer is not None:
            codings = [c.strip() for c in transfer.split(b",") if c.strip()]
            if codings and codings[-1] == b"chunked":
                self._framing = "chunked"
            else:
                self._framing, self._keep_alive = "close", False
            if length is not None:  # both: Transfer-Encoding wins, and the connection is not reused
                self._keep_alive = False
        elif length is not None:
            if not length.isdigit():
                raise httpx.RemoteProtocolError(f"invalid Content-Length {length[:40]!r}")
            self._framing, self._length = "length", int(length)
        else:
            self._framing, self._keep_alive = "close", False

    def _read_chunks(self) -> bool:
        """Decode the chunks that have fully arrived; True once the last chunk and the trailers are in."""
        buffer, at = self._buffer, self._chunk_at
        while True:
            self._chunk_at = at
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                if len(buffer) - at > MAX_HEAD:
                    raise httpx.RemoteProtocolError("malformed chunk header")
                return False
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"invalid chunk size {size_text[:20]!r}") from None
            if size < 0:
                raise httpx.RemoteProtocolError(f"invalid chunk size {size_text[:20]!r}")
            if size == 0:  # the last chunk, then trailer lines (ignored) and an empty line
                rest = line_end + 2
                if buffer[rest : rest + 2] == b"\r\n":
                    end = rest + 2
                else:
                    found = buffer.find(b"\r\n\r\n", rest)
                    if found < 0:
                        if len(buffer) - rest > MAX_HEAD:
                            raise httpx.RemoteProtocolError("the answer's trailers are too large")
                        return False
                    end = found + 4
                del buffer[:end]
                return True
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                return False
            if buffer[data_end : data_end + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("malformed chunk")
            self._chunks.append(bytes(buffer[line_end + 2 : data_end]))
            at = data_end + 2


def _ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    """The same trust httpx would use for ``verify`` (certifi, ``SSL_CERT_FILE``, a CA file or directory)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        context = ssl.create_default_context(capath=verify) if os.path.isdir(verify) else ssl.create_default_context(cafile=verify)
    else:
        context = httpx.create_ssl_context(verify=verify)
    context.set_alpn_protocols(["http/1.1"])
    return context


class Http11Transport(httpx.AsyncBaseTransport):
    """
    A keep-alive HTTP/1.1 connection pool for ``httpx.AsyncClient`` on asyncio's own streams and TLS.

    It does what the poller needs and no more: no HTTP/2, no proxies (the poller keeps httpx's transport
    when one applies), bodies in memory. Errors are httpx's (``ConnectError``, ``ConnectTimeout``,
    ``ReadTimeout``, ``ReadError``, ``RemoteProtocolError``, ``PoolTimeout``), so the retry rules above
    it are unchanged. A reused connection the server had already closed is replaced once for GET/HEAD.

    :param verify: TLS verification as httpx takes it: True, False, a CA bundle path or an SSLContext.
    :param limits: the most connections (in use) and idle ones kept, and how long an idle one is kept.
    """

    def __init__(self, *, verify: ssl.SSLContext | str | bool = True, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=60.0)
        self._verify = verify
        self._ssl: ssl.SSLContext | None = None
        self._max_connections = limits.max_connections or 100
        self._max_idle = limits.max_keepalive_connections if limits.max_keepalive_connections is not None else self._max_connections
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._slots = asyncio.Semaphore(self._max_connections)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self.connections_opened = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a pooled connection; the answer's body is read whole."""
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        payload = self._payload(request, await request.aread())
        answer = await self.exchange(origin, payload, method=request.method, timeouts=request.extensions.get("timeout", {}))
        return answer.response()

    async def exchange(self, origin: tuple[str, str, int], payload: bytes, *, method: str, timeouts: dict[str, float | None]) -> _Answer:
        """
        Send one serialized request to ``origin`` on a pooled connection and read its whole answer.

        :param origin: scheme, host and port.
        :param payload: the request's bytes.
        :param method: its method (HEAD answers have no body; only GET/HEAD are replayed on a stale connection).
        :param timeouts: ``connect``, ``read`` and ``pool`` seconds (None: no limit).
        """
        await self._acquire(timeouts.get("pool"))
        try:
            for attempt in (1, 2):
                found = self._checkout(origin)
                connection, reused = (found, True) if found is not None else (await self._connect(origin, timeouts.get("connect")), False)
                try:
                    answer = await connection.exchange(payload, head_method=method == "HEAD", read_timeout=timeouts.get("read"))
                except _Disconnected:
                    self._open.discard(connection)
                    if reused and attempt == 1 and method in ("GET", "HEAD"):
                        continue  # a stale keep-alive connection: try once on a new one
                    raise
                except BaseException:
                    self._open.discard(connection)
                    raise
                break
        finally:
            self._slots.release()
        self._checkin(origin, connection, answer.keep_alive)
        return answer

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    # ---- the pool ----------------------------------------------------------------------------------
    @staticmethod
    def _payload(request: httpx.Request, body: bytes) -> bytes:
        lines = [f"{request.method} ".encode("ascii"), request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            lowered = name.lower()
            if lowered in (b"content-length", b"transfer-encoding"):
                continue
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                raise httpx.LocalProtocolError("a header contains a line break")
            lines += (name, b": ", value, b"\r\n")
        if body or request.method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines += (b"\r\n", body)
        return b"".join(lines)

    async def _acquire(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no free connection in time") from None

    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive:
                return connection
            connection.close()
            self._open.discard(connection)
        return None

    def _checkin(self, origin: tuple[str, str, int], connection: _Connection, keep_alive: bool) -> None:
        idle = self._idle.setdefault(origin, [])
        if not keep_alive or connection.closed or len(idle) >= self._max_idle:
            connection.close()
            self._open.discard(connection)
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context(self._verify)
            context = self._ssl
        loop = asyncio.get_running_loop()
        connect = loop.create_connection(
            _Connection, host, port, ssl=context, server_hostname=host if context is not None else None,
            ssl_handshake_timeout=timeout if context is not None else None,
        )
        try:
            _, connection = await (asyncio.wait_for(connect, timeout) if timeout is not None else connect)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:  # refused, unreachable, name resolution, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
        self.connections_opened += 1
        self._open.add(connection)
        return connection


_FAST_KEYS = frozenset({"headers", "timeout"})
_URL_CACHE_SIZE = 4096


class _Target:
    """A GET target parsed once: where to connect, the request line and Host header, an httpx.Request for the response."""

    __slots__ = ("head", "origin", "request")

    def __init__(self, origin: tuple[str, str, int], head: bytes, request: httpx.Request) -> None:
        self.origin = origin
        self.head = head
        self.request = request


class LeanClient(httpx.AsyncClient):
    """
    ``httpx.AsyncClient`` on :class:`Http11Transport`, with a short path for the calls pollers repeat.

    A plain GET (an absolute ``str`` URL, a ``dict`` of headers, a number timeout, nothing else) is
    serialized straight to bytes (the request line and headers cached per URL and header set) and sent on
    the transport's pool; its answer comes back as an ``httpx.Response`` like any other. Everything else
    (bodies, params, other methods) goes through httpx as usual. The short path skips what httpx does
    per request that a token-authenticated JSON API does not need: URL re-parsing, header merging,
    cookie handling (cookies are neither stored nor sent on it) and per-request logging.

    :param transport: the pool requests are sent on.
    :param kwargs: the rest of ``httpx.AsyncClient``'s arguments.
    """

    def __init__(self, *, transport: Http11Transport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._lean = transport
        self._targets: dict[str, _Target | None] = {}
        self._header_blocks: dict[tuple[tuple[str, str], ...], bytes] = {}

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """Send a request; a plain GET takes the short path (see the class)."""
        if method == "GET" and isinstance(url, str) and kwargs.keys() <= _FAST_KEYS:
            timeout = kwargs.get("timeout")
            headers = kwargs.get("headers")
            if isinstance(timeout, (int, float)) and (headers is None or isinstance(headers, dict)):
                target = self._target(url)
                block = self._header_block(headers or {})
                if target is not None and block is not None:
                    seconds = float(timeout)
                    answer = await self._lean.exchange(
                        target.origin, target.head + block, method="GET", timeouts={"connect": seconds, "read": seconds, "pool": seconds}
                    )
                    response = answer.response()
                    response.request = target.request
                    await response.aread()
                    return response
        return await super().request(method, url, **kwargs)

    def _target(self, url: str) -> _Target | None:
        if url in self._targets:
            return self._targets[url]
        target: _Target | None = None
        if url.isascii() and url.isprintable() and " " not in url and "#" not in url:
            parsed = httpx.URL(url)
            if parsed.scheme in ("http", "https") and parsed.host and not parsed.userinfo and str(parsed) == url:
                origin = (parsed.scheme, parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
                head = b"GET " + parsed.raw_path + b" HTTP/1.1\r\nHost: " + parsed.netloc + b"\r\n"
                target = _Target(origin, head, httpx.Request("GET", parsed))
        if len(self._targets) >= _URL_CACHE_SIZE:
            self._targets.clear()
        self._targets[url] = target
        return target

    def _header_block(self, headers: dict[str, str]) -> bytes | None:
        key = tuple(headers.items())
        block = self._header_blocks.get(key)
        if block is None:
            merged = httpx.Headers(self.headers)
            merged.update(headers)
            lines = []
            for name, value in merged.raw:
                if name.lower() in (b"host", b"content-length", b"transfer-encoding", b"cookie"):
                    continue
                if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                    return None  # let httpx refuse it
                lines.append(name + b": " + value + b"\r\n")
            block = b"".join(lines) + b"\r\n"
            if len(self._header_blocks) >= 64:
                self._header_blocks.clear()
            self._header_blocks[key] = block
        return block
