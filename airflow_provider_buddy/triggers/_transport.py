"""The triggerer's HTTP transport: httpx's API and errors on top of one ``aiohttp`` session.

:class:`AiohttpTransport` is an ``httpx.AsyncBaseTransport`` backed by one ``aiohttp.ClientSession`` and
its ``TCPConnector`` (keep-alive pool, TLS, HTTP/1.1 parsing: aiohttp's, not ours). The hook's error
classes and retry rules above it (``HttpCore``) are unchanged because every aiohttp failure is mapped to
the httpx exception that says the same thing about whether the request may have reached the server
(see :func:`map_error`). :class:`PollingClient` is an ``httpx.AsyncClient`` whose plain GETs (the polls)
go straight to the session, skipping httpx's per-request client work; everything else goes through
httpx as usual and reaches the same transport.

Requests that need a proxy (from the environment) keep httpx's own transport; so does everything when
``[buddy] http_transport = httpx``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import urllib.request
from typing import Any

import aiohttp
import httpx
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

_REPLAYED_ON_STALE = frozenset({"GET", "HEAD"})
_DROPPED_HEADERS = frozenset({"host", "transfer-encoding"})


def aiohttp_transport_allowed(base_url: str) -> bool:
    """
    Whether :class:`AiohttpTransport` may carry requests to ``base_url``: not when the environment routes
    them through a proxy (httpx's own transport does that), nor when ``[buddy] http_transport = httpx``.

    :param base_url: the API base URL.
    """
    from airflow_provider_buddy.utils.settings import HTTP_TRANSPORT, read_choice

    if read_choice(HTTP_TRANSPORT, ("aiohttp", "httpx")) == "httpx":
        return False
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass(url.host))


def _detail(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def map_error(exc: BaseException) -> httpx.TransportError:
    """
    The httpx exception for an aiohttp (or socket) failure, chosen by what it proves about the request.

    Only failures that prove the request never left become ``ConnectError`` / ``ConnectTimeout`` (which
    ``HttpCore`` reads as "never sent", so a write may be sent again): the name did not resolve, the
    connection was refused or the TLS handshake failed (``ClientConnectorError`` and its DNS, SSL and
    certificate kinds), or the connection, handshake included, was not made in time
    (``ConnectionTimeoutError``: aiohttp raises it only around ``connector.connect``). Everything that can
    happen once the request may have been written is a read-side error: the server closed the connection
    (``ServerDisconnectedError``), the answer is cut short or malformed (``ClientPayloadError``,
    ``ClientResponseError``), no answer in time (``SocketTimeoutError``, any other timeout), a reset or other
    socket error (``ClientOSError``, ``ClientConnectionResetError``). Anything unknown is read as "may have
    been sent" too.
    """
    detail = _detail(exc)
    error: httpx.TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout(f"no connection in time: {detail}")
    elif isinstance(exc, aiohttp.ClientConnectorError):  # DNS, refused, unreachable, TLS handshake and certificate
        error = httpx.ConnectError(detail)
    elif isinstance(exc, asyncio.TimeoutError):  # SocketTimeoutError (sock_read) and any other timeout
        error = httpx.ReadTimeout(f"timed out waiting for the answer: {detail}")
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        error = httpx.RemoteProtocolError(f"the server closed the connection without a complete answer: {detail}")
    elif isinstance(exc, aiohttp.ClientPayloadError):
        error = httpx.RemoteProtocolError(f"the answer broke off in the middle or its body is malformed: {detail}")
    elif isinstance(exc, aiohttp.ClientResponseError):
        error = httpx.RemoteProtocolError(f"not a valid HTTP/1.1 answer: {detail}")
    elif isinstance(exc, (aiohttp.ClientConnectionResetError, ConnectionResetError, BrokenPipeError)):
        error = httpx.WriteError(f"the connection was reset while sending: {detail}")
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        error = httpx.UnsupportedProtocol(detail)
    else:  # ClientOSError, any other ClientError or OSError
        error = httpx.ReadError(f"the connection broke: {detail}")
    error.__cause__ = exc
    return error


def _ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext | bool:
    """What aiohttp takes for ``verify`` as httpx takes it: an SSL context (certifi for True), or False (no checks)."""
    if verify is False:
        return False
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, str):
        return ssl.create_default_context(capath=verify) if os.path.isdir(verify) else ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context(verify=True)


def _client_timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    """
    aiohttp's timeouts for httpx's ``connect`` and ``read``: ``connect`` bounds getting a connection (the TLS
    handshake included; aiohttp raises ``ConnectionTimeoutError`` only there), and one timer for the whole
    exchange, ``connect + read`` (``total``), bounds the answer: so a plain timeout always comes after the
    connection was made, at least ``read`` seconds after the request was written. One timer per request,
    where ``sock_read`` would re-arm one for every chunk that arrives.
    """
    total = None if read is None else read + (connect or 0.0)
    return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect, sock_read=None)


class _Response(httpx.Response):
    """An answer of the short GET path: its ``request`` is built only if someone asks for it."""

    _lazy_url: str = ""

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = httpx.Request("GET", self._lazy_url)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    ``httpx.AsyncBaseTransport`` on one ``aiohttp.ClientSession`` (created in the running loop on first use).

    - TLS verified by default: ``verify`` as httpx takes it (True: certifi; a CA file or directory path;
      an ``SSLContext``; False);
    - at most ``limits.max_connections`` requests at once; waiting longer than the pool timeout for one is
      ``httpx.PoolTimeout``; idle connections are kept ``limits.keepalive_expiry`` seconds;
    - no redirects followed, no cookies kept, bodies not decompressed (httpx does it), proxies not used
      (a request needing one is sent by httpx's own transport: see :func:`aiohttp_transport_allowed`);
    - errors mapped to httpx's by :func:`map_error`; a GET or HEAD whose connection closed before any
      answer is sent once more at once (a stale keep-alive connection); no other method ever is.

    :param verify: TLS verification as httpx takes it.
    :param limits: the most connections and how long an idle one is kept.
    """

    def __init__(self, *, verify: ssl.SSLContext | str | bool = True, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=60.0)
        self._ssl = _ssl_context(verify)
        self._max_connections = limits.max_connections or 100
        self._keepalive = limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self.connections_opened = 0

    # ---- httpx ------------------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body is read whole (still encoded, as a transport returns it)."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in request.headers.raw:
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                raise httpx.LocalProtocolError("a header contains a line break")
            key = name.decode("latin-1")
            if key.lower() not in _DROPPED_HEADERS:
                headers.add(key, value.decode("latin-1"))
        body = await request.aread()
        if body or request.method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        status, reason, raw_headers, content, _ = await self.send(
            request.method, URL(str(url), encoded=True), CIMultiDictProxy(headers), body or None, request.extensions.get("timeout", {})
        )
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def aclose(self) -> None:
        """Close the session and every connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # ---- aiohttp ------------------------------------------------------------------------------------
    async def send(
        self, method: str, url: URL, headers: CIMultiDictProxy[str], body: bytes | None, timeouts: dict[str, float | None]
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes, bool]:
        """
        Send one request on the pool and read its whole answer: status, reason, raw headers, body (as sent)
        and whether it has a ``Content-Encoding`` (for httpx to decode).

        :param method: the HTTP method.
        :param url: the absolute URL, already encoded.
        :param headers: every header to send (aiohttp adds Host, and Content-Type for a body without one).
        :param body: the body, or None.
        :param timeouts: ``connect``, ``read`` and ``pool`` seconds (None: no limit).
        :raises httpx.TransportError: as :func:`map_error` says, or ``PoolTimeout``.
        """
        session = self._session if self._session is not None else self._open()
        slots = self._slots
        assert slots is not None
        if slots.locked():
            try:
                await asyncio.wait_for(slots.acquire(), timeouts.get("pool"))
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout("no free connection in time") from None
        else:
            await slots.acquire()
        key = (timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = _client_timeout(*key)
        try:
            for attempt in (1, 2):
                try:
                    async with session.request(method, url, headers=headers, data=body, allow_redirects=False, timeout=timeout) as answer:
                        content = await answer.read()
                        encoded = "Content-Encoding" in answer.headers
                        return answer.status, (answer.reason or "").encode("latin-1"), list(answer.raw_headers), content, encoded
                except aiohttp.ServerDisconnectedError as exc:
                    if attempt == 1 and method in _REPLAYED_ON_STALE and isinstance(exc.message, str):
                        continue  # closed before any byte of the answer (a stale keep-alive connection): once more
                    raise map_error(exc) from exc
                except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                    raise map_error(exc) from exc
        finally:
            slots.release()
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(self) -> aiohttp.ClientSession:
        def counted_socket(info: Any) -> socket.socket:
            family, type_, proto, _, _ = info
            sock = socket.socket(family=family, type=type_, proto=proto)
            self.connections_opened += 1
            return sock

        connector = aiohttp.TCPConnector(
            ssl=self._ssl, limit=self._max_connections, keepalive_timeout=self._keepalive, socket_factory=counted_socket
        )
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False)
        # Only this transport decides what is sent again (aiohttp would replay PUT and DELETE too).
        session._retry_connection = False
        self._session = session
        self._slots = asyncio.Semaphore(self._max_connections)
        return session


_FAST_KEYS = frozenset({"headers", "timeout"})


class PollingClient(httpx.AsyncClient):
    """
    ``httpx.AsyncClient`` on :class:`AiohttpTransport`, with a short path for the calls pollers repeat.

    A plain GET (an absolute ``str`` URL, a ``dict`` of headers, a number timeout, nothing else) goes
    straight to the transport's session: the merged headers are kept per header set, and the answer
    comes back as an ``httpx.Response`` like any other. Everything else (bodies, params, other methods)
    goes through httpx as usual, to the same transport. The short path skips what httpx does per request
    that a token-authenticated JSON API does not need: URL re-parsing, header merging, cookie handling
    (cookies are neither stored nor sent on it), auth and redirect flows, per-request logging.

    :param transport: the transport requests are sent on.
    :param kwargs: the rest of ``httpx.AsyncClient``'s arguments.
    """

    def __init__(self, *, transport: AiohttpTransport, **kwargs: Any) -> None:
        super().__init__(transport=transport, **kwargs)
        self._fast = transport
        self._header_sets: dict[tuple[tuple[str, str], ...], CIMultiDictProxy[str] | None] = {}

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """Send a request; a plain GET takes the short path (see the class)."""
        if method == "GET" and isinstance(url, str) and kwargs.keys() <= _FAST_KEYS and not self.is_closed:
            timeout = kwargs.get("timeout")
            headers = kwargs.get("headers")
            if (
                isinstance(timeout, (int, float))
                and (headers is None or isinstance(headers, dict))
                and url.startswith(("https://", "http://"))
            ):
                merged = self._headers_for(headers or {})
                if merged is not None:
                    seconds = float(timeout)
                    status, reason, raw_headers, content, encoded = await self._fast.send(
                        "GET", URL(url, encoded=True), merged, None, {"connect": seconds, "read": seconds, "pool": seconds}
                    )
                    response = _Response(
                        status,
                        headers=raw_headers,
                        stream=httpx.ByteStream(content),
                        extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
                    )
                    response._lazy_url = url
                    if encoded:
                        response.read()  # httpx's decoders (gzip, deflate, ...), from the body already in memory
                    else:  # the body is the content: what read() would do, without its chain of generators
                        response._content = content
                        response.is_stream_consumed = response.is_closed = True
                    return response
        return await super().request(method, url, **kwargs)

    def _headers_for(self, headers: dict[str, str]) -> CIMultiDictProxy[str] | None:
        key = tuple(headers.items())
        if key in self._header_sets:
            return self._header_sets[key]
        merged = httpx.Headers(self.headers)
        merged.update(headers)
        found: CIMultiDict[str] | None = CIMultiDict()
        for name, value in merged.raw:
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                found = None  # let httpx refuse it
                break
            text = name.decode("latin-1")
            if text.lower() not in _DROPPED_HEADERS and text.lower() != "cookie":
                assert found is not None
                found.add(text, value.decode("latin-1"))
        result = CIMultiDictProxy(found) if found is not None else None
        if len(self._header_sets) >= 64:
            self._header_sets.clear()
        self._header_sets[key] = result
        return result
