"""Fault injection: status answers, dropped connections, delays, malformed bodies, before and after processing."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import BuddyEmulator, Fault

RUNS = "/workspaces/acme/projects/web/pipelines/1/executions"
ONE_RUN = r"/executions/\d+$"


def test_status_fault_with_retry_after_hits_twice(emu: BuddyEmulator, api: httpx.Client) -> None:
    rid = api.post(RUNS, json={}).json()["id"]
    emu.add_fault(Fault(kind="status", status=429, headers={"Retry-After": "1"}, method="GET", path=ONE_RUN, times=2))
    assert api.get(RUNS).status_code == 200  # the list does not match the path
    assert api.patch(f"{RUNS}/{rid}", json={"operation": "CANCEL"}).status_code == 200  # nor PATCH
    first, second, third = (api.get(f"{RUNS}/{rid}") for _ in range(3))
    for response in (first, second):
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"errors": [{"message": "injected 429"}]}
        assert "X-Rate-Limit-Remaining" in response.headers
    assert third.status_code == 200 and third.json()["id"] == rid
    recorded = emu.requests_to("GET", ONE_RUN)
    assert [(r.status, r.fault) for r in recorded] == [(429, "status"), (429, "status"), (200, None)]
    assert emu.faults == []


def test_status_fault_with_reset_header_and_custom_body(emu: BuddyEmulator, api: httpx.Client) -> None:
    reset = str(int(time.time()) + 2)
    emu.add_fault(Fault(kind="status", status=503, headers={"X-Rate-Limit-Reset": reset}, body="<html>Bad gateway</html>"))
    response = api.get(RUNS)
    assert response.status_code == 503 and response.headers["X-Rate-Limit-Reset"] == reset
    assert response.text == "<html>Bad gateway</html>"
    emu.add_fault(Fault(kind="status", status=500, body={"error": "boom"}))
    assert api.get(RUNS).json() == {"error": "boom"}


def test_unlimited_fault_until_cleared(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.add_fault(Fault(kind="status", status=502, times=None))
    assert [api.get(RUNS).status_code for _ in range(5)] == [502] * 5
    emu.clear_faults()
    assert api.get(RUNS).status_code == 200


def test_drop_closes_the_connection_without_a_response(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.add_fault(Fault(kind="drop", method="GET"))
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(RUNS)
    assert api.get(RUNS).status_code == 200  # the client reconnects
    dropped = emu.requests[0]
    assert (dropped.fault, dropped.status) == ("drop", None)


def test_delay_causes_a_read_timeout(emu: BuddyEmulator, make_client: Any) -> None:
    impatient = make_client(emu, timeout=0.2)
    emu.add_fault(Fault(kind="delay", delay=10.0, method="GET"))  # the emulator cancels it when it stops
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        impatient.get(RUNS)
    assert time.monotonic() - started < 9.0  # gave up long before the answer would come (wide: a slow machine eats into it)
    assert impatient.get(RUNS).status_code == 200


def test_delay_then_normal_answer(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.add_fault(Fault(kind="delay", delay=0.3))
    started = time.monotonic()
    response = api.get(RUNS)
    assert response.status_code == 200 and time.monotonic() - started >= 0.3
    assert emu.requests[0].fault == "delay"


def test_malformed_body(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.add_fault(Fault(kind="malformed", method="POST"))
    response = api.post(RUNS, json={})
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert emu.executions("web", 1) == []  # "before": the request was not processed


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(kind="drop", method="POST", when="after"), httpx.RemoteProtocolError),
        (Fault(kind="delay", delay=10.0, method="POST", when="after"), httpx.ReadTimeout),
        (Fault(kind="status", status=502, method="POST", when="after"), None),
        (Fault(kind="malformed", method="POST", when="after"), json.JSONDecodeError),
    ],
)
def test_after_faults_lose_the_response_of_a_run_that_was_created(
    emu: BuddyEmulator, make_client: Any, fault: Fault, error: type[Exception] | None
) -> None:
    client = make_client(emu, timeout=1.0)  # well within the delay fault's 10 s, well over a normal answer on a slow machine
    emu.add_fault(fault)
    if error is None:
        assert client.post(RUNS, json={"comment": "marker-1"}).status_code == 502
    else:
        with pytest.raises(error):
            client.post(RUNS, json={"comment": "marker-1"}).json()
    # the run exists although the client never saw its response; listing finds it by the comment marker
    listed = client.get(RUNS).json()["executions"]
    assert [e["comment"] for e in listed] == ["marker-1"]
    assert len(emu.executions("web", 1)) == 1
    assert emu.requests_to("POST", "/executions$")[0].fault == fault.kind


def test_before_faults_do_not_process_the_request(emu: BuddyEmulator, api: httpx.Client) -> None:
    emu.add_fault(Fault(kind="drop", method="POST"))
    with pytest.raises(httpx.TransportError):
        api.post(RUNS, json={})
    emu.add_fault(Fault(kind="status", status=500, method="POST"))
    assert api.post(RUNS, json={}).status_code == 500
    assert emu.executions("web", 1) == []


@pytest.mark.buddy_emulator(seed=7)
def test_random_faults_are_seeded(buddy_emulator: BuddyEmulator, make_client: Any) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b")
    buddy_emulator.add_fault(Fault(kind="status", status=503, probability=0.3, times=None))
    client = make_client(buddy_emulator)
    codes = [client.get(RUNS).status_code for _ in range(60)]
    hits = codes.count(503)
    assert 5 <= hits <= 35 and codes.count(200) == 60 - hits
    with BuddyEmulator(seed=7) as twin:
        twin.add_pipeline(project="web", pipeline_id=1, identifier="b")
        twin.add_fault(Fault(kind="status", status=503, probability=0.3, times=None))
        twin_client = make_client(twin)
        assert [twin_client.get(RUNS).status_code for _ in range(60)] == codes


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault(kind="explode")
    with pytest.raises(ValueError, match="needs delay"):
        Fault(kind="delay")
    with pytest.raises(ValueError, match="when"):
        Fault(kind="drop", when="during")
    with pytest.raises(ValueError, match="probability"):
        Fault(kind="drop", probability=2)
    assert Fault(kind="status").status == 500
    assert Fault.from_dict({"kind": "status", "status": 429, "headers": {"Retry-After": 1}}).headers == {"Retry-After": "1"}
    with pytest.raises(ValueError, match="unknown fault field"):
        Fault.from_dict({"kind": "drop", "count": 2})
