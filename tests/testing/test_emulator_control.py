"""Base path, HTTPS, scenarios, the HTTP control endpoints, the CLI and the pytest fixtures."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_buddy.testing import DEMO_SCENARIO, BuddyEmulator, ScenarioError, load_scenario
from tests.testing.standalone import run_cli

RUNS = "/workspaces/acme/projects/web/pipelines/1/executions"


@pytest.mark.buddy_emulator(base_path="/api/")
def test_base_path_prefixes_every_api_url(emu: BuddyEmulator, api: httpx.Client) -> None:
    assert emu.base_path == "/api" and emu.url.endswith("/api")
    run = api.post(RUNS, json={}).json()
    assert run["url"] == f"{emu.url}{RUNS}/{run['id']}" and "/api/workspaces/" in run["url"]
    assert api.get(run["url"]).json()["id"] == run["id"]
    root = emu.url.removesuffix("/api")
    at_root = httpx.get(root + RUNS, headers={"Authorization": "Bearer test-token"})
    assert at_root.status_code == 404  # joined onto the host root instead of the base path
    assert [r.path for r in emu.requests] == [RUNS, RUNS + f"/{run['id']}", RUNS]  # recorded without the prefix
    assert emu.requests[-1].status == 404
    assert httpx.get(emu.url + "/__emulator__/requests").status_code == 200


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    crypto = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = crypto.Name([crypto.NameAttribute(crypto.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        crypto.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(crypto.SubjectAlternativeName([crypto.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with BuddyEmulator(ssl_certfile=certfile, ssl_keyfile=keyfile, scenario=DEMO_SCENARIO) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        response = httpx.get(
            emu.url + "/workspaces/acme/projects/web/pipelines/1",
            headers={"Authorization": "Bearer demo-token"},
            verify=str(certfile),
        )
        assert response.status_code == 200 and response.json()["url"].startswith("https://")


def test_demo_scenario_describes_the_release_flow() -> None:
    scenario = load_scenario(DEMO_SCENARIO)
    assert (scenario.workspace, scenario.token) == ("acme", "demo-token")
    (web,) = scenario.projects
    pipelines = {p.identifier: p for p in web.pipelines}
    assert [(p.id, p.identifier) for p in web.pipelines] == [
        (1, "build"),
        (2, "deploy-staging"),
        (3, "release-notes"),
        (4, "long-deploy"),
    ]
    assert [a.type for a in pipelines["deploy-staging"].actions] == ["SFTP", "WAIT_FOR_APPLY", "SFTP"]
    assert pipelines["deploy-staging"].wait_shown_on == "action"
    asked = {v.key for v in pipelines["release-notes"].actions[0].variables}
    assert pipelines["release-notes"].actions[0].type == "WAIT_FOR_VARIABLES" and asked == {"RELEASE_NOTES", "VERSION"}
    assert [a.duration for a in pipelines["long-deploy"].actions] == [3600]


def test_scenario_from_a_dict_and_errors(tmp_path: Path) -> None:
    scenario = {
        "workspace": "beta",
        "token": "t0k",
        "projects": [{"name": "api", "pipelines": [{"id": 7, "identifier": "ci", "actions": [{"id": 1, "name": "A"}]}]}],
    }
    with BuddyEmulator(scenario=scenario, token="override", speed=0) as emu:
        assert (emu.workspace, emu.token) == ("beta", "override")
        response = httpx.get(emu.url + "/workspaces/beta/projects/api/pipelines/7", headers={"Authorization": "Bearer override"})
        assert response.json()["name"] == "ci"
    with pytest.raises(ScenarioError, match="colour"):
        load_scenario({"projects": [{"name": "x", "colour": "red"}]})
    with pytest.raises(ScenarioError, match="fail_action 2 is a waiting action"):
        load_scenario(
            {
                "projects": [
                    {
                        "name": "x",
                        "pipelines": [
                            {
                                "id": 1,
                                "identifier": "p",
                                "fail_action": 2,
                                "actions": [{"id": 1, "name": "A"}, {"id": 2, "name": "W", "type": "WAIT_FOR_APPLY"}],
                            }
                        ],
                    }
                ]
            }
        )
    with pytest.raises(ScenarioError, match="action ids must be unique"):
        load_scenario(
            {
                "projects": [
                    {"name": "x", "pipelines": [{"id": 1, "identifier": "p", "actions": [{"id": 1, "name": "A"}, {"id": 1, "name": "B"}]}]}
                ]
            }
        )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        BuddyEmulator(scenario=broken)


def test_control_endpoints(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    control = buddy_emulator.url + "/__emulator__"
    pipeline = {
        "project": "web",
        "pipeline_id": 1,
        "identifier": "deploy",
        "actions": [{"id": 1, "name": "Ship", "duration": 5}, {"id": 2, "name": "Gate", "type": "WAIT_FOR_APPLY"}],
    }
    assert httpx.post(control + "/pipelines", json=pipeline).json()["identifier"] == "deploy"
    assert httpx.post(control + "/pipelines", json={"project": "web", "pipeline_id": 2}).status_code == 400
    rid = api.post(RUNS, json={"comment": "c"}).json()["id"]
    started = httpx.post(control + "/start/web/1", json={"comment": "ui"}).json()
    assert started["triggered_on"] == "CLICK"

    recorded = httpx.get(control + "/requests").json()
    assert [(r["method"], r["path"], r["status"]) for r in recorded] == [("POST", RUNS, 200)]  # control calls are not recorded

    assert httpx.post(control + "/advance", json={"seconds": 6}).status_code == 200
    assert httpx.post(control + "/advance", json={"seconds": "six"}).status_code == 400
    assert httpx.post(control + "/speed", json={"speed": 0}).json() == {"speed": 0}
    assert httpx.post(control + "/speed", json={"speed": -1}).status_code == 400
    executions = httpx.get(control + "/executions/web/1").json()
    assert [(e["id"], e["status"]) for e in executions] == [(started["id"], "WAITING_FOR_APPLY"), (rid, "WAITING_FOR_APPLY")]
    approved = httpx.post(control + f"/approve/web/1/{rid}").json()
    assert approved["status"] == "SUCCESSFUL" and approved["action_executions"][1]["approver_id"] == 2
    again = httpx.post(control + f"/approve/web/1/{rid}")
    assert again.status_code == 400 and "not waiting" in again.json()["errors"][0]["message"]

    fault = {"kind": "status", "status": 503, "method": "GET", "path": "/executions$", "times": 1}
    assert httpx.post(control + "/faults", json=fault).json()["status"] == 503
    assert httpx.post(control + "/faults", json={"kind": "nope"}).status_code == 400
    assert api.get(RUNS).status_code == 503
    assert api.get(RUNS).status_code == 200
    httpx.post(control + "/faults", json={"kind": "drop", "times": None})
    assert len(httpx.get(control + "/").json()["faults"]) == 1
    httpx.delete(control + "/faults")
    assert api.get(RUNS).status_code == 200

    httpx.post(control + "/config", json={"api_disabled": True})
    assert api.get(RUNS).status_code == 403
    httpx.post(control + "/config", json={"api_disabled": False, "scopes": ["WORKSPACE", "EXECUTION_INFO"]})
    assert api.get(RUNS).status_code == 200 and api.post(RUNS, json={}).status_code == 403

    assert httpx.post(control + "/reset-requests").json()["cleared"] > 0
    assert httpx.get(control + "/requests").json() == [] and buddy_emulator.requests == []


def test_stop_and_start_again_keeps_the_state(buddy_emulator: BuddyEmulator, api: httpx.Client) -> None:
    buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b")
    api.post(RUNS, json={})
    with pytest.raises(RuntimeError, match="already running"):
        buddy_emulator.start()
    buddy_emulator.stop()
    assert not buddy_emulator.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(buddy_emulator.url + RUNS)
    port = buddy_emulator.port
    buddy_emulator.start(port=port)  # the same port again, right away
    assert buddy_emulator.port == port
    response = httpx.get(buddy_emulator.url + RUNS, headers={"Authorization": "Bearer test-token"})
    assert response.json()["total_element_count"] == 1


def test_the_session_fixture_is_shared_and_cleaned(buddy_emulator_session: BuddyEmulator) -> None:
    assert buddy_emulator_session.running and buddy_emulator_session.requests == []
    assert buddy_emulator_session.faults == []


def test_package_import_is_light() -> None:
    code = "import sys, airflow_provider_buddy.testing; print('uvicorn' in sys.modules, 'starlette' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False"]


def test_cli_serves_a_scenario_until_terminated() -> None:
    process = run_cli("--port", "0", "--scenario", str(DEMO_SCENARIO), "--speed", "5", "--base-path", "/api")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (https?://127\.0\.0\.1:\d+/api)", first)
        assert match, first + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        url = match.group(1)
        headers = {"Authorization": "Bearer demo-token"}
        pipelines = httpx.get(url + "/workspaces/acme/projects/web/pipelines", headers=headers).json()["pipelines"]
        assert [p["identifier"] for p in pipelines] == ["build", "deploy-staging", "release-notes", "long-deploy"]
        run = httpx.post(url + "/workspaces/acme/projects/web/pipelines/4/executions", json={}, headers=headers).json()
        assert run["status"] == "INPROGRESS"
        recorded = httpx.get(url + "/__emulator__/requests").json()
        assert [r["method"] for r in recorded] == ["GET", "POST"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_cli_reports_a_bad_scenario(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"projects": [{"name": "x", "pipelines": [{"id": 1}]}]}))
    process = run_cli("--port", "0", "--scenario", str(bad))
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2 and "invalid scenario" in err and "identifier" in err


def test_add_pipeline_argument_errors(buddy_emulator: BuddyEmulator) -> None:
    with pytest.raises(ScenarioError, match="wait_shown_on"):
        buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b", wait_shown_on="nowhere")
    with pytest.raises(ScenarioError, match="outcome"):
        buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b", outcome="MAYBE")
    spec: Any = buddy_emulator.add_pipeline(project="web", pipeline_id=1, identifier="b", outcome="FAILED")
    assert spec.actions[0].id == 1 and spec.name == "b"
