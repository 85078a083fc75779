"""
The benchmark's Buddy stand-in: one HTTPS server process on 127.0.0.1 that counts what it sees.

``python benchmarks/_server.py --dir DIR`` writes a self-signed CA and a server certificate (ECDSA
P-256, made with ``cryptography``) into DIR, serves

- ``GET /workspaces/{ws}/projects/{p}/pipelines/{id}/executions/{eid}`` over TLS: the body of
  ``tests/fixtures/seed001_response0.json`` (a real Buddy execution, ~5.7 KB) with this execution's id and
  status. An execution starts on its first poll and finishes ``D`` seconds later. Requests carrying
  ``X-Bench-Missing-Until-Finished: 1`` get 404 (same body) until then: the only signal
  ``HttpSensorTrigger`` can wait on (it fires on the first non-404 answer);
- a plain-HTTP control port: ``GET /reset?d=SECONDS`` (zero every counter, set D) and ``GET /stats``
  (JSON: requests, statuses, TCP connections, TLS handshakes, request times, finish times);

and prints ``READY <tls port> <control port>`` once listening. Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import re
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
TOKEN = "tok"
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "seed001_response0.json"
EXECUTION_PATH = re.compile(r"^/workspaces/([^/]+)/projects/([^/]+)/pipelines/(\d+)/executions/(\d+)$")
MISSING_HEADER = b"x-bench-missing-until-finished"
MAX_HEAD = 64 * 1024


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it; returns (ca.pem, cert.pem, key.pem)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "buddy-bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_path, cert_path, key_path


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Bodies:
    """The execution bodies, rendered once per execution and state (the server's own cost stays small)."""

    def __init__(self) -> None:
        self.template: dict[str, Any] = json.loads(FIXTURE.read_text())
        self._cache: dict[tuple[int, int, bool], bytes] = {}

    def body(self, pipeline_id: int, execution_id: int, started: float, finished: float | None) -> bytes:
        key = (pipeline_id, execution_id, finished is not None)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = json.loads(json.dumps(self.template))
        base = f"https://api.buddy.works/workspaces/acme/projects/bench/pipelines/{pipeline_id}/executions/{execution_id}"
        data["url"] = base
        data["id"] = execution_id
        data["start_date"] = _iso(started)
        data["finish_date"] = _iso(finished) if finished is not None else None
        data["status"] = "SUCCESSFUL" if finished is not None else "INPROGRESS"
        for action in data.get("action_executions", []):
            action["status"] = "SUCCESSFUL" if finished is not None else "INPROGRESS"
            action["finish_date"] = _iso(finished) if finished is not None else None
            action["progress"] = 100 if finished is not None else 40
        body = json.dumps(data, indent=1).encode()
        self._cache[key] = body
        return body


class Counters:
    """What the server saw since the last reset."""

    def __init__(self, duration: float = 20.0) -> None:
        self.duration = duration
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.tcp_connections = 0
        self.tls_handshakes = 0
        self.tls_resumed = 0
        self.tls_failures = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self.request_times: list[float] = []
        self.started: dict[tuple[int, int], float] = {}
        self.bad_requests = 0

    def finish_time(self, key: tuple[int, int]) -> float:
        return self.started[key] + self.duration

    def as_json(self) -> dict[str, Any]:
        return {
            "duration": self.duration,
            "requests": self.requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "tcp_connections": self.tcp_connections,
            "tls_handshakes": self.tls_handshakes,
            "tls_resumed": self.tls_resumed,
            "tls_failures": self.tls_failures,
            "max_open_connections": self.max_open_connections,
            "bad_requests": self.bad_requests,
            "request_times": self.request_times,
            "finish_times": {f"{p}/{e}": start + self.duration for (p, e), start in self.started.items()},
        }


class BenchServer:
    """The TLS endpoint and the control endpoint."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.counters = Counters()
        self.bodies = Bodies()

    # ---- TLS side --------------------------------------------------------------------------------
    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counters = self.counters
        counters.tcp_connections += 1
        counters.open_connections += 1
        counters.max_open_connections = max(counters.max_open_connections, counters.open_connections)
        try:
            try:
                await writer.start_tls(self.context)
            except (ssl.SSLError, OSError, asyncio.IncompleteReadError, ConnectionError):
                counters.tls_failures += 1
                return
            counters.tls_handshakes += 1
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.session_reused:
                counters.tls_resumed += 1
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
                    return
                keep_alive = await self.answer(head, reader, writer)
                await writer.drain()
                if not keep_alive:
                    return
        finally:
            counters.open_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    async def answer(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        counters = self.counters
        now = time.time()
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].decode("latin-1").split(" ", 2)
        except ValueError:
            counters.bad_requests += 1
            self.respond(writer, 400, b"{}", keep_alive=False)
            return False
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get(b"content-length", b"0") or 0)
        if length:
            await reader.readexactly(length)
        keep_alive = headers.get(b"connection", b"").lower() != b"close" and version == "HTTP/1.1"
        counters.requests += 1
        counters.request_times.append(now)
        match = EXECUTION_PATH.match(urlsplit(target).path)
        if method != "GET" or match is None:
            status, body = 404, b'{"errors":[{"message":"Not found"}]}'
        elif headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
            status, body = 401, b'{"errors":[{"message":"Invalid token"}]}'
        else:
            key = (int(match.group(3)), int(match.group(4)))
            started = counters.started.setdefault(key, now)
            finish = started + counters.duration
            finished = finish if now >= finish else None
            body = self.bodies.body(key[0], key[1], started, finished)
            status = 200 if finished is not None or headers.get(MISSING_HEADER) != b"1" else 404
        counters.statuses[status] = counters.statuses.get(status, 0) + 1
        self.respond(writer, status, body, keep_alive=keep_alive)
        return keep_alive

    @staticmethod
    def respond(writer: asyncio.StreamWriter, status: int, body: bytes, *, keep_alive: bool) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        ).encode()
        writer.write(head + body)

    # ---- control side ----------------------------------------------------------------------------
    async def serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b"\r\n", 1)[0].decode().split(" ")[1]
            url = urlsplit(target)
            if url.path == "/reset":
                query = parse_qs(url.query)
                self.counters = Counters(float(query.get("d", ["20"])[0]))
                payload: dict[str, Any] = {"ok": True}
            elif url.path == "/stats":
                payload = self.counters.as_json()
            else:
                payload = {"error": "unknown"}
            body = json.dumps(payload).encode()
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        finally:
            writer.close()


async def main_async(directory: Path) -> None:
    _, cert, key = write_certificates(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = BenchServer(context)
    tls = await asyncio.start_server(server.serve_client, HOST, 0, backlog=4096, limit=MAX_HEAD)
    control = await asyncio.start_server(server.serve_control, HOST, 0)
    tls_port = tls.sockets[0].getsockname()[1]
    control_port = control.sockets[0].getsockname()[1]
    print(f"READY {tls_port} {control_port}", flush=True)
    async with tls, control:
        await asyncio.gather(tls.serve_forever(), control.serve_forever())


def main() -> None:
    if sys.version_info < (3, 11):  # StreamWriter.start_tls, used to count TCP connections and TLS handshakes apart
        sys.exit("the benchmark server needs Python 3.11 or newer")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", required=True, type=Path, help="where the certificates are written")
    args = parser.parse_args()
    try:
        asyncio.run(main_async(args.dir))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
