"""The shared poller's aiohttp-backed transport and short GET path, its error mapping, gate, pacing and shared reads.

Scripted servers on 127.0.0.1 answer exactly the bytes each test needs (framing, stale connections,
timeouts, TLS, connections dropped or reset at a chosen moment), so every error the transport maps is
provoked against real sockets; the emulator's faults show what each mapping means for a write (sent
again or never).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import json
import selectors
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey

from airflow_provider_buddy.exceptions import BuddyError
from airflow_provider_buddy.hooks._buddy_api import BUDDY_ERRORS
from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.testing import Fault
from airflow_provider_buddy.triggers import _transport
from airflow_provider_buddy.triggers._poller import SharedPoller, _Gate
from airflow_provider_buddy.triggers._transport import AiohttpTransport, PollingClient, aiohttp_transport_allowed
from tests.conftest import fast_settings

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
BODY = json.dumps({"id": 7, "status": "INPROGRESS", "pad": "x" * 3000}).encode()


class Scripted:
    """A TCP server whose ``handler(reader, writer, connection_number)`` writes whatever bytes a test wants."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                head += await reader.readexactly(int(line.split(b":")[1]))
        self.requests.append(head)
        return head


@asynccontextmanager
async def scripted(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    server = Scripted(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=context)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


def answer(body: bytes = BODY, status: bytes = b"200 OK", headers: bytes = b"Content-Type: application/json\r\n") -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


def client(port: int, scheme: str = "http", host: str = "127.0.0.1", **kwargs: Any) -> tuple[PollingClient, AiohttpTransport, str]:
    transport = AiohttpTransport(**kwargs)
    return PollingClient(transport=transport, timeout=5.0), transport, f"{scheme}://{host}:{port}/workspaces/acme/executions/7"


HEADERS = {"Authorization": "Bearer tok", "Accept": "application/json"}


# ---- framing -------------------------------------------------------------------------------------
async def test_short_get_path_content_length_and_keep_alive() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        for _ in range(3):
            await server.read_request(reader)
            writer.write(answer())
            await writer.drain()

    async with scripted(handler) as server:
        lean, transport, url = client(server.port)
        for _ in range(3):
            response = await lean.request("GET", url, headers=HEADERS, timeout=5.0)
            assert response.status_code == 200 and response.json()["id"] == 7
            assert response.request.url == httpx.URL(url) and response.reason_phrase == "OK"
        await lean.aclose()
    assert server.connections == 1 and transport.connections_opened == 1
    first = server.requests[0]
    assert first.startswith(b"GET /workspaces/acme/executions/7 HTTP/1.1\r\n") and f"Host: 127.0.0.1:{server.port}\r\n".encode() in first
    assert b"Authorization: Bearer tok\r\n" in first and b"Accept: application/json\r\n" in first and b"Cookie" not in first


async def test_chunked_answer_arriving_in_pieces_with_extensions_and_trailers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        pieces = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
            b"\r\n5;ext=1\r\nhel",
            b"lo\r\n",
            b"6\r\n world\r\n0\r\nX-T: 1\r\n",
            b"\r\n",
        ]
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        await server.read_request(reader)  # the connection is reusable after a chunked answer
        writer.write(answer(b"again"))
        await writer.drain()

    async with scripted(handler) as server:
        lean, _, url = client(server.port)
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).content == b"hello world"
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).content == b"again"
        await lean.aclose()
    assert server.connections == 1


async def test_body_ended_by_close_and_gzip_is_decoded() -> None:
    packed = gzip.compress(BODY)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + packed)
        await writer.drain()

    async with scripted(handler) as server:
        lean, _, url = client(server.port)
        first = await lean.request("GET", url, headers=HEADERS, timeout=5.0)
        second = await lean.request("GET", url, headers=HEADERS, timeout=5.0)
        await lean.aclose()
    assert first.json()["id"] == 7 and second.content == BODY
    assert server.connections == 2  # a close-delimited answer leaves nothing to reuse


async def test_interim_answer_head_and_no_content() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b"{}"))
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")  # HEAD: no body follows
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async with scripted(handler) as server:
        lean, _, url = client(server.port)
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json() == {}
        head = await lean.head(url)
        assert head.status_code == 200 and head.content == b""
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).status_code == 204
        await lean.aclose()
    assert server.connections == 1


async def test_post_with_json_body_goes_through_httpx_on_the_same_pool() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        request = await server.read_request(reader)
        body = request.split(b"\r\n\r\n", 1)[1]
        writer.write(answer(json.dumps({"echo": json.loads(body)}).encode(), b"201 Created"))
        await writer.drain()

    async with scripted(handler) as server:
        lean, _, url = client(server.port)
        response = await lean.post(url, json={"operation": "APPLY"}, params={"a": "1"})
        await lean.aclose()
    assert response.status_code == 201 and response.json() == {"echo": {"operation": "APPLY"}}
    assert server.requests[0].startswith(b"POST /workspaces/acme/executions/7?a=1 HTTP/1.1\r\n")
    assert b"Content-Length: 21\r\n" in server.requests[0]  # {"operation":"APPLY"}


# ---- failures --------------------------------------------------------------------------------------
async def test_stale_keep_alive_connection_is_replaced_for_get_but_not_for_post() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        writer.write(answer(b'{"n": %d}' % number))
        await writer.drain()
        await server.read_request(reader)  # the next request on this connection: dropped unanswered

    async with scripted(handler) as server:
        lean, transport, url = client(server.port)
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json() == {"n": 1}
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json() == {"n": 2}
        with pytest.raises(httpx.RemoteProtocolError):
            await lean.post(url, json={})
        await lean.aclose()
    assert transport.connections_opened == 2


async def test_connection_closed_by_server_while_idle_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await server.read_request(reader)
        writer.write(answer(b'{"n": %d}' % number))
        await writer.drain()

    async with scripted(handler) as server:
        lean, _, url = client(server.port)
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json() == {"n": 1}
        await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json() == {"n": 2}
        await lean.aclose()


async def test_read_timeout_connect_error_and_garbage() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await asyncio.sleep(2)

    async with scripted(silent) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.ReadTimeout):
            await lean.request("GET", url, headers=HEADERS, timeout=0.2)
        await lean.aclose()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async with scripted(garbage) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.RemoteProtocolError, match="not a valid HTTP/1.1 answer"):
            await lean.request("GET", url, headers=HEADERS, timeout=5.0)
        await lean.aclose()

    async def bad_chunk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n")
        await writer.drain()

    async with scripted(bad_chunk) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.RemoteProtocolError, match="chunk size"):
            await lean.request("GET", url, headers=HEADERS, timeout=5.0)
        await lean.aclose()

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()

    async with scripted(cut) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.RemoteProtocolError, match="broke off in the middle"):
            await lean.request("GET", url, headers=HEADERS, timeout=5.0)
        port = server.port
        await lean.aclose()
    lean, _, url = client(port)
    with pytest.raises(httpx.ConnectError):
        await lean.request("GET", url, headers=HEADERS, timeout=5.0)
    await lean.aclose()


async def test_header_with_line_break_is_refused() -> None:
    lean, _, url = client(9)  # nothing is sent
    with pytest.raises(httpx.LocalProtocolError):
        await lean.request("GET", url, headers={"Authorization": "Bearer tok\r\nX-Evil: 1"}, timeout=5.0)
    await lean.aclose()


async def test_closed_client_refuses_like_httpx() -> None:
    lean, _, url = client(9)
    await lean.aclose()
    with pytest.raises(RuntimeError):
        await lean.request("GET", url, headers=HEADERS, timeout=5.0)


# ---- error mapping: only a failure that proves the request never left may read as "never sent" ----------
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # what HttpCore.transport_failure reads as "never opened"


def may_have_been_sent(error: BaseException) -> bool:
    return isinstance(error, httpx.TransportError) and not isinstance(error, NEVER_SENT)


async def test_dns_failure_and_refused_connection_are_connect_errors() -> None:
    lean, _, url = client(443, host="does-not-exist.invalid")
    with pytest.raises(httpx.ConnectError) as dns:
        await lean.post(url, json={})
    await lean.aclose()
    assert isinstance(dns.value.__cause__, aiohttp.ClientConnectorDNSError)

    async def nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        return None

    async with scripted(nothing) as server:
        port = server.port
    lean, _, url = client(port)  # the listener is gone: refused
    with pytest.raises(httpx.ConnectError) as refused:
        await lean.patch(url, json={})
    await lean.aclose()
    assert type(refused.value.__cause__) is aiohttp.ClientConnectorError


async def test_connect_timeout_before_the_connection_is_made_is_a_connect_timeout() -> None:
    """The TCP connection opens but the TLS handshake never completes: nothing of the request was sent."""
    received: list[bytes] = []

    async def silent_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        received.append(await reader.read(65536))  # the ClientHello, never answered
        await asyncio.sleep(3)

    async with scripted(silent_tls) as server:
        lean, _, url = client(server.port, "https")
        with pytest.raises(httpx.ConnectTimeout) as info:
            await lean.post(url, json={"operation": "APPLY"}, timeout=0.3)
        await lean.aclose()
    assert isinstance(info.value.__cause__, aiohttp.ConnectionTimeoutError)
    assert received and received[0][:1] == b"\x16"  # a TLS record: no HTTP request ever reached the server
    assert server.requests == []


async def test_waiting_for_a_pooled_connection_too_long_is_a_pool_timeout() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await release.wait()
        writer.write(answer())
        await writer.drain()

    async with scripted(slow) as server:
        lean, _, url = client(server.port, limits=httpx.Limits(max_connections=1))
        holder = asyncio.create_task(lean.request("GET", url, headers=HEADERS, timeout=5.0))
        while not server.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await lean.post(url, json={}, timeout=httpx.Timeout(5.0, pool=0.2))
        release.set()
        assert (await holder).status_code == 200
        await lean.aclose()
    assert len(server.requests) == 1  # the POST never left


async def read_then(reader: asyncio.StreamReader, server: Scripted) -> None:
    await server.read_request(reader)


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
async def test_connection_closed_after_the_request_was_written_is_not_never_sent(method: str) -> None:
    """ServerDisconnectedError after the request left: RemoteProtocolError, and the transport never sends it again."""

    async def close_unanswered(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)

    async with scripted(close_unanswered) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await lean.request(method, url, json={"operation": "CANCEL"})
        await lean.aclose()
    assert isinstance(info.value.__cause__, aiohttp.ServerDisconnectedError) and may_have_been_sent(info.value)
    assert len(server.requests) == 1 and server.connections == 1


async def test_answer_cut_short_after_the_request_was_written_is_a_protocol_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"id": 7')
        await writer.drain()

    async with scripted(cut) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.RemoteProtocolError) as info:
            await lean.post(url, json={})
        await lean.aclose()
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError) and may_have_been_sent(info.value)
    assert len(server.requests) == 1


async def test_no_answer_in_time_after_the_request_was_written_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        await asyncio.sleep(3)

    async with scripted(silent) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.ReadTimeout) as info:
            await lean.patch(url, json={}, timeout=0.3)
        await lean.aclose()
    assert isinstance(info.value.__cause__, asyncio.TimeoutError) and may_have_been_sent(info.value)
    assert len(server.requests) == 1


async def test_reset_after_the_request_was_written_is_a_read_error() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        writer.transport.abort()

    async with scripted(reset) as server:
        lean, _, url = client(server.port)
        with pytest.raises(httpx.ReadError) as info:
            await lean.post(url, json={})
        await lean.aclose()
    assert isinstance(info.value.__cause__, aiohttp.ClientOSError) and may_have_been_sent(info.value)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            aiohttp.ClientConnectorDNSError(
                ConnectionKey("h", 443, True, True, None, None, None), OSError(-2, "Name or service not known")
            ),
            httpx.ConnectError,
        ),
        (
            aiohttp.ClientConnectorError(ConnectionKey("h", 443, True, True, None, None, None), ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
        ),
        (aiohttp.ConnectionTimeoutError("Connection timeout to host"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), httpx.ReadTimeout),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), httpx.WriteError),
        (aiohttp.ServerFingerprintMismatch(b"a", b"b", "h", 443), httpx.ReadError),
        (aiohttp.ClientError("anything else"), httpx.ReadError),
    ],
)
def test_error_map(error: BaseException, expected: type[httpx.TransportError]) -> None:
    mapped = _transport.map_error(error)
    assert type(mapped) is expected and mapped.__cause__ is error


async def test_writes_are_never_sent_again_once_they_may_have_reached_the_server(emulator: Any) -> None:
    """Through the triggerer's shared client and the hook's retry rules: dropped or late answers to a run (POST) or a
    cancel (PATCH) end in an error that says it was not sent again; a refused connection is retried."""
    poller = SharedPoller()
    settings = fast_settings(emulator.url, timeout=0.5)
    shared = poller.client(settings, HttpCore(settings, BUDDY_ERRORS))
    assert isinstance(shared, PollingClient)
    hook = BuddyHook(settings=settings, async_client=shared)
    try:
        run = await hook.arun_pipeline("web", 1)
        for fault in (
            Fault(kind="drop", method="POST", when="after"),  # the run was created, the answer lost
            Fault(kind="drop", method="POST", when="before"),  # the request reached the server, which closed it
            Fault(kind="delay", delay=1.5, method="POST", when="after"),  # no answer in time
        ):
            emulator.clear_faults()
            emulator.add_fault(fault)
            before = len(emulator.requests_to("POST", r"/executions$"))
            with pytest.raises(BuddyError, match="not sent again"):
                await hook.arun_pipeline("web", 1)
            await asyncio.sleep(fault.delay)
            assert len(emulator.requests_to("POST", r"/executions$")) == before + 1, fault
        emulator.clear_faults()
        emulator.add_fault(Fault(kind="drop", method="PATCH", when="after"))
        with pytest.raises(BuddyError, match="not sent again"):
            await hook.acancel_execution("web", 1, run.id)
        assert len(emulator.requests_to("PATCH", rf"/executions/{run.id}$")) == 1
    finally:
        await poller.close()

    nowhere = fast_settings("http://127.0.0.1:9", max_retries=2)
    poller = SharedPoller()
    refused = BuddyHook(settings=nowhere, async_client=poller.client(nowhere, HttpCore(nowhere, BUDDY_ERRORS)))
    try:
        with pytest.raises(BuddyError, match="failed after retries: ConnectError"):  # never sent: retried like a read
            await refused.arun_pipeline("web", 1)
    finally:
        await poller.close()


# ---- TLS -------------------------------------------------------------------------------------------
def certificates(directory: Path) -> tuple[Path, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca, key_file = directory / "ca.pem", directory / "key.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ca, key_file)
    return ca, context


async def test_tls_trusts_the_given_ca_and_refuses_others(tmp_path: Path) -> None:
    ca, context = certificates(tmp_path)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(answer())
            await writer.drain()

    async with scripted(handler, context) as server:
        lean, _, url = client(server.port, "https", verify=str(ca))
        assert (await lean.request("GET", url, headers=HEADERS, timeout=5.0)).json()["id"] == 7
        await lean.aclose()
        stranger, _, url = client(server.port, "https", verify=True)  # certifi's roots: our CA is unknown
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stranger.request("GET", url, headers=HEADERS, timeout=5.0)
        await stranger.aclose()


# ---- choosing the transport ---------------------------------------------------------------------------
TRANSPORT_SETTING = "AIRFLOW__BUDDY__HTTP_TRANSPORT"  # [buddy] http_transport


def test_proxies_and_the_switch_keep_httpx_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", TRANSPORT_SETTING):
        monkeypatch.delenv(name, raising=False)
    assert aiohttp_transport_allowed("https://api.buddy.works")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert not aiohttp_transport_allowed("https://api.buddy.works")
    monkeypatch.setenv("NO_PROXY", "api.buddy.works")
    assert aiohttp_transport_allowed("https://api.buddy.works")
    monkeypatch.setenv(TRANSPORT_SETTING, "httpx")
    assert not aiohttp_transport_allowed("https://api.buddy.works")


async def test_the_poller_client_is_aiohttp_backed_unless_switched_off_or_proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", TRANSPORT_SETTING):
        monkeypatch.delenv(name, raising=False)
    settings = fast_settings("https://api.buddy.works")
    core = HttpCore(settings, BUDDY_ERRORS)
    poller = SharedPoller()
    chosen = poller.client(settings, core)
    assert isinstance(chosen, PollingClient) and not chosen.follow_redirects
    await poller.close()
    for variable, value in ((TRANSPORT_SETTING, "httpx"), ("HTTPS_PROXY", "http://proxy.example:3128")):
        with monkeypatch.context() as patched:
            patched.setenv(variable, value)
            poller = SharedPoller()
            escape = poller.client(settings, core)
            assert type(escape) is httpx.AsyncClient and not escape.follow_redirects  # httpx's own transport (and its proxy support)
            await poller.close()


# ---- the gate, pacing, shared reads ---------------------------------------------------------------------
async def test_gate_is_fifo_and_passes_on_a_place_given_to_a_cancelled_waiter() -> None:
    gate = _Gate(1)
    order: list[int] = []

    async def take(n: int, hold: float) -> None:
        async with gate:
            order.append(n)
            await asyncio.sleep(hold)

    first = asyncio.create_task(take(0, 0.05))
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(take(n, 0)) for n in range(1, 5)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # cancelled while waiting: skipped
    await asyncio.gather(first, *waiters[1:])
    assert order == [0, 2, 3, 4]

    release = asyncio.Event()

    async def hold_until_released() -> None:
        async with gate:
            order.append(9)
            await release.wait()

    blocker = asyncio.create_task(hold_until_released())
    await asyncio.sleep(0)
    late = asyncio.create_task(take(10, 0))
    last = asyncio.create_task(take(11, 0))
    await asyncio.sleep(0)  # both wait in line
    release.set()
    await asyncio.sleep(0)  # the blocker leaves and hands its place to `late`, whose turn to run comes after this task's...
    late.cancel()  # ...so it is cancelled before it runs (on any machine): the place must go on to `last`
    await asyncio.gather(blocker, last, return_exceptions=True)
    assert order[-1] == 11 and 10 not in order and gate._free == 1


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """
    An event loop whose clock moves only when it would wait for a timer, and then jumps straight there.

    Times read from ``loop.time()`` are then exact, however slow or loaded this machine is. Only for code
    that does no I/O: with a timer pending, this loop never waits for I/O, it jumps to the timer.
    """

    def __init__(self) -> None:
        self.virtual_now = 0.0
        loop = self

        class JumpingSelector(selectors.DefaultSelector):
            def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
                if timeout is None:
                    return super().select(None)
                events = super().select(0)
                if not events:
                    loop.virtual_now += timeout
                return events

        super().__init__(JumpingSelector())

    def time(self) -> float:
        return self.virtual_now


def test_reads_keep_their_place_in_the_interval_and_are_dated_from_the_poll() -> None:
    loop = VirtualClockLoop()
    try:
        loop.run_until_complete(_reads_keep_their_place_in_the_interval_and_are_dated_from_the_poll())
    finally:
        loop.close()


async def _reads_keep_their_place_in_the_interval_and_are_dated_from_the_poll() -> None:
    poller = SharedPoller(max_in_flight=1)
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def fetch() -> float:
        sent.append(loop.time())
        await asyncio.sleep(0.1)  # the first read's answer takes 0.1 s: its place in the interval
        return loop.time()

    start = loop.time()
    await poller.read("k", fetch, max_age=0.9)
    # A caller one interval later: its read goes out ~0.1 s after it asked (the first read's place)...
    await asyncio.sleep(max(0.0, start + 1.0 - loop.time()))
    await poller.read("k", fetch, max_age=0.9)
    assert sent[1] - (start + 1.0) == pytest.approx(0.1)
    # ...and a caller asking at once gets that read (younger than max_age from when its poll began).
    assert len(sent) == 2
    await poller.read("k", fetch, max_age=0.9)
    assert len(sent) == 2
    poller.forget("k")
    called = loop.time()
    await poller.read("k", fetch, max_age=0.9)  # forgotten: no pacing, no shared read
    assert len(sent) == 3 and sent[2] == pytest.approx(called)


async def test_hook_is_built_once_for_many_callers() -> None:
    poller = SharedPoller()
    builds = 0

    async def build() -> object:
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return object()

    hooks = await asyncio.gather(*(poller.hook("conn", build) for _ in range(50)))
    assert builds == 1 and len({id(h) for h in hooks}) == 1
