"""
The outermost ASGI app: strips the base path, records API requests, injects faults and adds the
rate-limit headers, then hands requests to the API app (or to the control app under ``/__emulator__``).

It must stay the app the server calls directly: dropping a connection reaches the server's transport
through the ``send`` callable it was given (uvicorn binds it to the connection's request cycle).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from airflow_provider_buddy.testing.control import CONTROL_PREFIX
from airflow_provider_buddy.testing.faults import MALFORMED_BODY, Fault, FaultBook
from airflow_provider_buddy.testing.recording import RecordedRequest, RequestLog

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

RATE_WINDOW = 60.0
logger = logging.getLogger(__name__)


class RateCounter:
    """
    Requests seen in the last minute, for the ``X-Rate-Limit-*`` headers (never enforced).

    :param limit: the advertised limit per minute.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._times: deque[float] = deque()

    def hit(self) -> int:
        """Count a request and return the remaining allowance."""
        now = time.monotonic()
        with self._lock:
            self._times.append(now)
            while self._times and self._times[0] < now - RATE_WINDOW:
                self._times.popleft()
            return max(0, self.limit - len(self._times))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, Headers, bytes]:
    status = 500
    headers: Headers = []
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception as exc:  # a bug in the emulator: answer a readable 500 rather than a bare disconnect
        logger.exception("the Buddy emulator failed on %s %s", scope.get("method"), scope.get("path"))
        message = f"Emulator error: {type(exc).__name__}: {exc}"
        return 500, [(b"content-type", b"application/json")], json.dumps({"errors": [{"message": message}]}).encode()
    return status, headers, b"".join(chunks)


async def _respond(send: Send, status: int, headers: Headers, body: bytes) -> None:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    kept.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": kept})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def drop_connection(send: Send) -> None:
    """Close the client's connection without answering."""
    cycle: Any = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        transport.close()
        # let the server notice the disconnect, so it does not try to answer 500 on a closed transport
        await asyncio.sleep(0.01)
        if hasattr(cycle, "disconnected"):
            cycle.disconnected = True
        return
    # any other server: promise a body and never deliver it, which breaks the connection
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4096")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("emulated dropped connection")


def _fault_response(fault: Fault) -> tuple[int, Headers, bytes] | None:
    """The answer a fault puts in place of the real one (None for a delay, which only slows it)."""
    if fault.kind == "delay":
        return None
    if fault.kind == "malformed":
        return 200, [(b"content-type", b"application/json")], MALFORMED_BODY
    payload = fault.response_body()
    if isinstance(payload, bytes):
        body, content_type = payload, b"text/plain; charset=utf-8"
    else:
        body, content_type = json.dumps(payload).encode(), b"application/json"
    headers: Headers = [(k.lower().encode(), v.encode()) for k, v in fault.headers.items()]
    if not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", content_type))
    return int(fault.status or 500), headers, body


class Gateway:
    """
    The ASGI app the server runs.

    :param api: the API app (paths relative to the base path).
    :param control: the control app (paths under ``/__emulator__``).
    :param faults: the active faults.
    :param log: where API requests are recorded.
    :param base_path: the API's path prefix, e.g. "/api" ("" for none).
    :param rate_limit: the advertised requests-per-minute limit.
    """

    def __init__(
        self,
        api: ASGIApp,
        control: ASGIApp,
        faults: FaultBook,
        log: RequestLog,
        base_path: str = "",
        rate_limit: int = 1000,
    ) -> None:
        self.api = api
        self.control = control
        self.faults = faults
        self.log = log
        self.base_path = base_path
        self.rate = RateCounter(rate_limit)

    def _relative(self, path: str) -> str | None:
        if not self.base_path:
            return path
        if path == self.base_path or path.startswith(self.base_path + "/"):
            return path[len(self.base_path) :] or "/"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        relative = self._relative(scope["path"])
        if (relative or scope["path"]).startswith(CONTROL_PREFIX):
            path = relative if relative is not None else scope["path"]
            await self.control(dict(scope, path=path, raw_path=path.encode(), root_path=""), receive, send)
            return
        await self._api_call(scope, relative, receive, send)

    async def _api_call(self, scope: Scope, relative: str | None, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        method = str(scope["method"]).upper()
        path = relative if relative is not None else scope["path"]
        record = self.log.add(
            RecordedRequest(
                method=method,
                path=path,
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
                headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])},
                json=_maybe_json(body),
            )
        )
        rate_headers: Headers = [
            (b"x-rate-limit-limit", str(self.rate.limit).encode()),
            (b"x-rate-limit-remaining", str(self.rate.hit()).encode()),
        ]
        fault = self.faults.take(method, path) if relative is not None else None
        replaced: tuple[int, Headers, bytes] | None = None
        if fault is not None:
            record.fault = fault.kind
            if fault.when == "before":
                if await _delay_or_drop(fault, send):
                    return
                replaced = _fault_response(fault)  # None for a delay: the request is processed after it
        if replaced is not None:
            status, headers, payload = replaced
        else:
            if relative is None:
                status, headers, payload = 404, [(b"content-type", b"application/json")], _not_found()
            else:
                inner = dict(scope, path=relative, raw_path=relative.encode(), root_path="")
                status, headers, payload = await _capture(self.api, inner, _replay(body, receive))
            if fault is not None and fault.when == "after":
                if await _delay_or_drop(fault, send):
                    return
                status, headers, payload = _fault_response(fault) or (status, headers, payload)
        record.status = status
        await _respond(send, status, _with_rate(headers, rate_headers), payload)


async def _delay_or_drop(fault: Fault, send: Send) -> bool:
    """Sleep the fault's delay; for a drop, close the connection and return True."""
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.kind == "drop":
        await drop_connection(send)
        return True
    return False


def _with_rate(headers: Headers, rate_headers: Headers) -> Headers:
    names = {k.lower() for k, _ in headers}
    return headers + [(k, v) for k, v in rate_headers if k not in names]


def _not_found() -> bytes:
    return json.dumps({"errors": [{"message": "Not found"}]}).encode()


def _maybe_json(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
