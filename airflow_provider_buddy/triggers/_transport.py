"""A small keep-alive HTTP/1.1 client transport on asyncio's own TLS, for the triggerer's polling.

Under ``httpx`` (same API, errors and retry rules above it), :class:`Http11Transport` replaces
httpcore + anyio for the poller's requests at about a quarter of the CPU per request: httpcore
re-plans its pool on every request start and end (see ``benchmarks/README.md`` for the profile).
:class:`LeanClient` serializes plain GETs straight to bytes. Requests that need a proxy (from the
environment) use httpx's own transport; so does everything when ``BUDDY_HTTP_TRANSPORT=httpx``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import urllib.request
from typing import Any

import httpx

TRANSPORT_ENV = "BUDDY_HTTP_TRANSPORT"
"""Set to ``httpx`` to send through httpx's own transport (httpcore) instead of :class:`Http11Transport`."""


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
_HEX_DIGITS = b"0123456789abcdefABCDEF"
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
                if exc is not None:
                    self._waiter.set_exception(httpx.ReadError(f"the connection broke in the middle of the answer: {exc}"))
                else:
                    self._waiter.set_exception(httpx.RemoteProtocolError("the server closed the connection in the middle of the answer"))
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
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip(b" \t")
            if not size_text or len(size_text) > 16 or size_text.lstrip(_HEX_DIGITS):
                raise httpx.RemoteProtocolError(f"invalid chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
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
        origin = (scheme, url.raw_host.decode("ascii"), url.port or (443 if scheme == "https" else 80))
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
            _Connection,
            host,
            port,
            ssl=context,
            server_hostname=host if context is not None else None,
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
        if method == "GET" and isinstance(url, str) and kwargs.keys() <= _FAST_KEYS and not self.is_closed:
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
                origin = (parsed.scheme, parsed.raw_host.decode("ascii"), parsed.port or (443 if parsed.scheme == "https" else 80))
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
