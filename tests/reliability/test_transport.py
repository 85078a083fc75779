"""
Transport safety: TLS is verified by default (a self-signed emulator is refused, and nothing reaches it),
``verify`` set to a CA bundle works on every path (sync hook, async hook, the triggerer's shared client, a
task in Airflow), and redirects are never followed — the token never travels to another host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.exceptions import BuddyApiError, BuddyConfigurationError, BuddyError, ErrorKind
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import TOKEN, WORKSPACE, LogCapture, fast_settings

_ids = itertools.count()
BUILD = [{"id": 10, "name": "Build", "type": "BUILD", "duration": 2}]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA, and a certificate for 127.0.0.1 / localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "buddy-reliability test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
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
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    found = Certificates(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    found.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return found


@pytest.fixture
def tls_emulator(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> Iterator[BuddyEmulator]:
    """The emulator serving HTTPS with the test CA's certificate; ``buddy_default`` with default TLS settings,
    ``buddy_ca`` trusting the test CA."""
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0, ssl_certfile=certificates.cert, ssl_keyfile=certificates.key) as emu:
        emu.add_pipeline("web", 1, "build", actions=BUILD)
        assert emu.url.startswith("https://127.0.0.1:")
        base = {"conn_type": "buddy", "host": emu.url, "login": WORKSPACE, "password": TOKEN}
        fast = {"timeout": 5, "max_retries": 2, "retry_min_wait": 0.01, "retry_max_wait": 0.05}
        monkeypatch.setenv("AIRFLOW_CONN_BUDDY_DEFAULT", json.dumps({**base, "extra": fast}))
        monkeypatch.setenv("AIRFLOW_CONN_BUDDY_CA", json.dumps({**base, "extra": {**fast, "verify": str(certificates.ca)}}))
        yield emu


async def first_event(trigger: BuddyExecutionTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


# ---- TLS -------------------------------------------------------------------------------------------
def test_tls_is_verified_by_default(tls_emulator: BuddyEmulator) -> None:
    hook = BuddyHook()  # buddy_default: no "verify" in its extra
    assert hook.settings.verify is True
    with pytest.raises(BuddyError) as info:
        hook.get_workspace()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert info.value.kind is ErrorKind.CONFIGURATION and "verify" in str(info.value)  # a setting to fix, not an outage to wait out
    assert tls_emulator.requests == []  # the handshake failed: no request, no token, ever reached it


async def test_tls_is_verified_by_default_async_and_in_the_triggerer(tls_emulator: BuddyEmulator) -> None:
    hook = BuddyHook()
    try:
        with pytest.raises(BuddyConfigurationError, match="CERTIFICATE_VERIFY_FAILED"):
            await hook.aget_workspace()
    finally:
        await hook.aclose()
    run = tls_emulator.start_execution("web", 1)
    trigger = BuddyExecutionTrigger(
        buddy_conn_id="buddy_default",
        project_name="web",
        pipeline_id=1,
        execution_id=run["id"],
        poll_interval=0.05,
        end_time=time.time() + 60,
    )
    started = time.monotonic()
    event = await asyncio.wait_for(first_event(trigger), 30)
    assert event["status"] == "error" and event["error_kind"] == "configuration" and "CERTIFICATE_VERIFY_FAILED" in event["message"]
    assert time.monotonic() - started < 10  # at once: not retried until the deadline
    assert tls_emulator.requests == []


def test_a_ca_bundle_in_verify_is_trusted(tls_emulator: BuddyEmulator, certificates: Certificates) -> None:
    hook = BuddyHook("buddy_ca")
    assert hook.settings.verify == str(certificates.ca)
    assert hook.get_workspace().name == WORKSPACE
    assert hook.run_pipeline("web", 1).status in ("INPROGRESS", "ENQUEUED")
    assert [r.method for r in tls_emulator.requests] == ["GET", "POST"]


async def test_a_ca_bundle_in_verify_is_trusted_async_and_in_the_triggerer(tls_emulator: BuddyEmulator) -> None:
    hook = BuddyHook("buddy_ca")
    try:
        assert (await hook.aget_workspace()).name == WORKSPACE
    finally:
        await hook.aclose()
    run = tls_emulator.start_execution("web", 1)
    trigger = BuddyExecutionTrigger(buddy_conn_id="buddy_ca", project_name="web", pipeline_id=1, execution_id=run["id"], poll_interval=0.05)
    assert (await asyncio.wait_for(first_event(trigger), 30))["status"] == "success"


@pytest.mark.usefixtures("airflow_db")
def test_a_ca_bundle_in_verify_is_trusted_by_tasks(tls_emulator: BuddyEmulator) -> None:
    with DAG(dag_id=f"tls_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(
            task_id="run", project_name="web", pipeline_id="build", buddy_conn_id="buddy_ca", poll_interval=0.1, deferrable=True
        )
        BuddyRunPipelineOperator(task_id="refused", project_name="web", pipeline_id=1, poll_interval=0.1)  # buddy_default: default TLS
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "success", "refused": "failed"}
    assert xcom(dag_run, "run", "summary")["status"] == "SUCCESSFUL"
    assert len(tls_emulator.requests_to("POST", r"/executions$")) == 1


def test_a_missing_ca_bundle_is_a_configuration_error(tls_emulator: BuddyEmulator, tmp_path: Path) -> None:
    hook = BuddyHook(settings=fast_settings(tls_emulator.url, verify=str(tmp_path / "no-such-ca.pem")))
    with pytest.raises(BuddyConfigurationError, match="verify"):
        hook.get_workspace()
    assert tls_emulator.requests == []


# ---- redirects -------------------------------------------------------------------------------------
class Recorder:
    """A tiny HTTP server on 127.0.0.1 that records every request's headers (what a token thief would keep)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                recorder.seen.append((self.command, self.path, dict(self.headers)))
                body = b'{"id": 1, "status": "SUCCESSFUL", "name": "stolen"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = _record

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


REDIRECTS = [301, 302, 303, 307, 308]


@pytest.mark.usefixtures("buddy_conn")
@pytest.mark.parametrize("status", REDIRECTS)
def test_redirects_are_not_followed_to_another_host(emulator: BuddyEmulator, recorder: Recorder, status: int) -> None:
    location = {"Location": f"{recorder.url}/steal"}
    emulator.add_fault(Fault(kind="status", status=status, headers=location, method="GET", times=None))
    emulator.add_fault(Fault(kind="status", status=status, headers=location, method="POST", times=None))
    emulator.add_fault(Fault(kind="status", status=status, headers=location, method="PATCH", times=None))
    hook = BuddyHook(settings=fast_settings(emulator.url))
    calls = [lambda: hook.get_workspace(), lambda: hook.run_pipeline("web", 1), lambda: hook.cancel_execution("web", 1, 1)]
    for call in calls:
        with pytest.raises(BuddyApiError, match="redirects are not followed") as info:
            call()
        assert info.value.http_status == status and TOKEN not in str(info.value)
    assert recorder.seen == []
    assert len(emulator.requests) == 3  # each sent once: a redirect is not retried either


@pytest.mark.usefixtures("buddy_conn")
async def test_redirects_are_not_followed_async_or_by_the_trigger(emulator: BuddyEmulator, recorder: Recorder) -> None:
    emulator.add_fault(Fault(kind="status", status=302, headers={"Location": f"{recorder.url}/steal"}, method="GET", times=None))
    hook = BuddyHook(settings=fast_settings(emulator.url))
    try:
        with pytest.raises(BuddyApiError, match="redirects are not followed"):
            await hook.aget_execution("web", 1, 1)
    finally:
        await hook.aclose()
    trigger = BuddyExecutionTrigger(buddy_conn_id="buddy_default", project_name="web", pipeline_id=1, execution_id=1, poll_interval=0.05)
    event = await asyncio.wait_for(first_event(trigger), 30)
    assert event["status"] == "error" and "redirect" in event["message"]
    assert recorder.seen == []


@pytest.mark.usefixtures("airflow_db")
def test_a_buddy_url_that_redirects_elsewhere_gets_no_token(recorder: Recorder, monkeypatch: pytest.MonkeyPatch, logs: LogCapture) -> None:
    """The connection points at a server that answers every request with a 302 to the recorder."""
    redirector = Recorder()

    class Redirect(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            redirector.seen.append((self.command, self.path, dict(self.headers)))
            self.send_response(302)
            self.send_header("Location", f"{recorder.url}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PATCH = _redirect

        def log_message(self, *args: Any) -> None:
            pass

    redirector.server.RequestHandlerClass = Redirect
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_BUDDY_MOVED", json.dumps({"conn_type": "buddy", "host": redirector.url, "login": WORKSPACE, "password": TOKEN})
        )
        with DAG(dag_id=f"moved_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
            BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=1, buddy_conn_id="buddy_moved", deferrable=True)
            BuddyExecutionSensor(
                task_id="sense", project_name="web", pipeline_id=1, execution_id=1, buddy_conn_id="buddy_moved", deferrable=True
            )
        dag_run = run_dag(dag)
    finally:
        redirector.close()
    assert states(dag_run) == {"run": "failed", "sense": "failed"}
    assert redirector.seen and all(headers.get("Authorization") == f"Bearer {TOKEN}" for _, _, headers in redirector.seen)
    assert recorder.seen == []  # the token never went to the host the redirect pointed at
    assert "redirects are not followed" in logs.text
