"""Every retry rule of the HTTP core, against injected faults on a real server (sync and async)."""

from __future__ import annotations

import email.utils
import socket
import time

import pytest

from airflow_provider_buddy.exceptions import (
    BuddyApiError,
    BuddyConnectionError,
    BuddyRateLimitError,
    BuddyServerError,
)
from airflow_provider_buddy.hooks._http import retry_after_seconds
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.conftest import TOKEN, LogCapture, fast_settings

PIPELINE = r"/pipelines/1$"
RUNS = r"/pipelines/1/executions$"


def gets(emulator: BuddyEmulator) -> int:
    return len(emulator.requests_to("GET", PIPELINE))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_get_retried_on_transient_status(hook: BuddyHook, emulator: BuddyEmulator, status: int) -> None:
    emulator.add_fault(Fault(kind="status", status=status, method="GET", path=PIPELINE, times=2))
    assert hook.get_pipeline("web", 1).id == 1
    assert gets(emulator) == 3


def test_get_honours_retry_after_seconds(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "1"}, method="GET", path=PIPELINE))
    started = time.monotonic()
    hook.get_pipeline("web", 1)
    assert time.monotonic() - started >= 0.95
    assert gets(emulator) == 2


def test_get_honours_rate_limit_reset_epoch(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    reset = int(time.time()) + 2
    emulator.add_fault(Fault(kind="status", status=429, headers={"X-Rate-Limit-Reset": str(reset)}, method="GET", path=PIPELINE))
    hook.get_pipeline("web", 1)
    second = emulator.requests_to("GET", PIPELINE)[1]
    assert second.time >= reset - 1.05


def test_retry_after_parsing() -> None:
    now = 1_795_000_000.0
    assert retry_after_seconds({"retry-after": "3"}, now) == 3.0
    assert retry_after_seconds({"retry-after": email.utils.formatdate(now + 5, usegmt=True)}, now) == pytest.approx(5.0)
    assert retry_after_seconds({"x-rate-limit-reset": str(int(now) + 7)}, now) == 7.0
    assert retry_after_seconds({"x-rate-limit-reset": str((int(now) + 7) * 1000)}, now) == 7.0
    assert retry_after_seconds({}, now) is None
    assert retry_after_seconds({"retry-after": "soon"}, now) is None


def test_get_gives_up_with_typed_error(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_fault(
        Fault(kind="status", status=429, body={"errors": [{"message": "Slow down"}]}, method="GET", path=PIPELINE, times=None)
    )
    with pytest.raises(BuddyRateLimitError) as info:
        hook.get_pipeline("web", 1)
    assert info.value.http_status == 429 and "Slow down" in str(info.value)
    assert gets(emulator) == 4  # 1 + max_retries (3)
    emulator.clear_faults()
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=PIPELINE, times=None))
    with pytest.raises(BuddyServerError, match="HTTP 503"):
        hook.get_pipeline("web", 1)


@pytest.mark.parametrize("kind", ["drop", "malformed"])
def test_get_retried_on_dropped_connection_and_malformed_body(hook: BuddyHook, emulator: BuddyEmulator, kind: str) -> None:
    emulator.add_fault(Fault(kind=kind, method="GET", path=PIPELINE, times=2))
    assert hook.get_pipeline("web", 1).identifier == "build"
    assert gets(emulator) == 3


def test_get_retried_on_read_timeout(emulator: BuddyEmulator) -> None:
    hook = BuddyHook(settings=fast_settings(emulator.url, timeout=1.0))  # the retry's answer must come within it, on a slow machine too
    emulator.add_fault(Fault(kind="delay", delay=10.0, method="GET", path=PIPELINE))  # cancelled when the emulator stops
    assert hook.get_pipeline("web", 1).id == 1
    assert gets(emulator) == 2


def test_run_post_whose_answer_times_out_is_not_sent_twice(emulator: BuddyEmulator) -> None:
    hook = BuddyHook(settings=fast_settings(emulator.url, timeout=0.5))
    emulator.add_fault(Fault(kind="delay", delay=1.5, method="POST", path=RUNS, when="after"))
    with pytest.raises(BuddyConnectionError, match="not sent again"):
        hook.run_pipeline("web", 1, {"comment": "once"})
    time.sleep(1.2)
    assert len(emulator.requests_to("POST", RUNS)) == 1
    assert [e["comment"] for e in emulator.executions("web", 1)] == ["once"]


@pytest.mark.parametrize(
    "fault", [Fault(kind="drop", method="POST", path=RUNS, when="after"), Fault(kind="status", status=503, method="POST", path=RUNS)]
)
def test_run_post_is_never_replayed_once_sent(hook: BuddyHook, emulator: BuddyEmulator, fault: Fault) -> None:
    emulator.add_fault(fault)
    with pytest.raises((BuddyConnectionError, BuddyServerError)):
        hook.run_pipeline("web", 1)
    assert len(emulator.requests_to("POST", RUNS)) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_run_post_retried_when_connection_never_opened(logs: LogCapture) -> None:
    hook = BuddyHook(settings=fast_settings(f"http://127.0.0.1:{_closed_port()}"))
    with pytest.raises(BuddyConnectionError, match="failed after retries: ConnectError"):
        hook.run_pipeline("web", 1)
    assert logs.text.count("retry ") == 3


def test_patch_retried_only_when_rejected(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_pipeline(
        project="web", pipeline_id=5, identifier="slow", name="Slow", actions=[{"id": 1, "name": "Long", "type": "BUILD", "duration": 9999}]
    )
    execution = hook.run_pipeline("web", 5)
    patch = rf"/executions/{execution.id}$"
    emulator.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "0"}, method="PATCH", path=patch))
    emulator.add_fault(Fault(kind="status", status=503, method="PATCH", path=patch))
    hook.cancel_execution("web", 5, execution.id)
    assert len(emulator.requests_to("PATCH", patch)) == 3
    emulator.clear_requests()
    emulator.add_fault(Fault(kind="status", status=500, method="PATCH", path=patch))
    with pytest.raises(BuddyServerError):
        hook.retry_execution("web", 5, execution.id)
    assert len(emulator.requests_to("PATCH", patch)) == 1


def test_patch_not_replayed_after_dropped_answer(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.speed = 0  # the run is still going when cancelled, however slow this machine is
    execution = hook.run_pipeline("web", 1)
    patch = rf"/executions/{execution.id}$"
    emulator.add_fault(Fault(kind="drop", method="PATCH", path=patch, when="after"))
    with pytest.raises(BuddyConnectionError, match="may have reached the server"):
        hook.cancel_execution("web", 1, execution.id)
    assert len(emulator.requests_to("PATCH", patch)) == 1
    assert emulator.execution("web", 1, execution.id)["status"] == "TERMINATED"


def test_client_errors_are_not_retried(hook: BuddyHook, emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="status", status=400, method="GET", path=PIPELINE, times=None))
    with pytest.raises(BuddyApiError):
        hook.get_pipeline("web", 1)
    assert gets(emulator) == 1


async def test_async_path_follows_the_same_rules(emulator: BuddyEmulator) -> None:
    hook = BuddyHook(
        settings=fast_settings(emulator.url, timeout=1.0)
    )  # the last retry's answer must come within it, on a slow machine too
    try:
        emulator.add_fault(Fault(kind="status", status=502, method="GET", path=PIPELINE, times=2))
        emulator.add_fault(Fault(kind="drop", method="GET", path=PIPELINE, times=1))
        assert (await hook.aget_pipeline("web", 1)).id == 1
        assert gets(emulator) == 4
        emulator.add_fault(Fault(kind="delay", delay=10.0, method="POST", path=RUNS, when="after"))
        with pytest.raises(BuddyConnectionError):
            await hook.arun_pipeline("web", 1, {"comment": "async once"})
        assert len(emulator.requests_to("POST", RUNS)) == 1
    finally:
        await hook.aclose()


def test_token_never_in_errors_or_logs(emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_fault(Fault(kind="status", status=500, method="GET", body={"error": f"echo {TOKEN}"}, times=None))
    hook = BuddyHook(settings=fast_settings(emulator.url))
    with pytest.raises(BuddyServerError) as info:
        hook.get_pipeline("web", 1)
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    text = logs.text
    assert "retry 3 of 3" in text and TOKEN not in text and "echo ***" in str(info.value)
    assert TOKEN not in repr(hook) and TOKEN not in repr(hook.settings)


ENCRYPTED = "enc-ECHOED-by-the-server-7731"


async def test_encrypted_values_a_server_echoes_never_reach_errors_or_logs(emulator: BuddyEmulator, logs: LogCapture) -> None:
    """Buddy answering with the value it was sent (a 400 on the run, 429s then a 400 on an approval) leaks nothing."""
    variables = [{"key": "DEPLOY_PASSWORD", "value": ENCRYPTED, "encrypted": True}, {"key": "TARGET", "value": "prod"}]
    echo = {"errors": [{"message": f"Variable DEPLOY_PASSWORD={ENCRYPTED} is invalid for TARGET=prod"}]}
    emulator.add_fault(Fault(kind="status", status=400, method="POST", path=RUNS, body=echo, times=2))
    emulator.add_fault(Fault(kind="status", status=429, method="PATCH", body=echo, headers={"Retry-After": "0"}, times=2))
    emulator.add_fault(Fault(kind="status", status=400, method="PATCH", body=echo, times=2))
    hook = BuddyHook(settings=fast_settings(emulator.url))
    errors: list[BuddyApiError] = []
    try:
        for call in (
            lambda: hook.run_pipeline("web", 1, {"variables": variables}),
            lambda: hook.approve_execution("web", 1, 1, variables=variables),
        ):
            with pytest.raises(BuddyApiError) as info:
                call()
            errors.append(info.value)
        with pytest.raises(BuddyApiError) as async_info:
            await hook.arun_pipeline("web", 1, {"variables": variables})
        errors.append(async_info.value)
        with pytest.raises(BuddyApiError) as async_info:
            await hook.aapprove_execution("web", 1, 1, variables=variables)
        errors.append(async_info.value)
    finally:
        await hook.aclose()
        hook.close()
    assert [e.http_status for e in errors] == [400, 400, 400, 400]
    for error in errors:
        assert ENCRYPTED not in f"{error} {error!r} {error.server_messages}"
        assert "Variable DEPLOY_PASSWORD=*** is invalid for TARGET=prod" in str(error)  # the rest of Buddy's words kept
    assert ENCRYPTED not in logs.text and "HTTP 429" in logs.text  # the retried 429s were logged, scrubbed too
    assert sum(ENCRYPTED in str(r.json) for r in emulator.requests) == 6  # it was sent each time, where it belongs
