"""GoRulesDeployReleaseOperator in real Airflow against the emulated BRMS: the environment named by key or name (resolved
through the environments list, said in the log), clear errors listing the environments, and a deploy that makes a
change request instead of a run: a success carrying its id, or a failure Airflow does not retry."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_buddy.operators.gorules import GoRulesDeployReleaseOperator
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("airflow_db", "gorules_conn")
_ids = itertools.count()
APPROVED = [
    {"key": "dev", "name": "Development"},
    {"key": "qa", "name": "QA"},
    {"key": "qa-eu", "name": "QA"},
    {"key": "production", "name": "Production", "change_request": True},
]


def deploy_dag(project_id: str, release_id: str, environment: str, **kwargs: Any) -> DAG:
    with DAG(dag_id=f"gorules_env_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        GoRulesDeployReleaseOperator(
            task_id="deploy", project_id=project_id, release_id=release_id, environment_id=environment, poll_interval=0.1, **kwargs
        )
    return dag


def approved_project(emulator: BuddyEmulator, answer: str = "run") -> tuple[str, dict[str, str], str]:
    created = emulator.add_gorules_project("approved", APPROVED, deploy_answer=answer)
    return created["id"], created["environments"], emulator.add_release(created["id"], "Rules", "2.0.0")


@pytest.mark.parametrize("named", ["dev", "Development", "development"])
def test_environment_by_key_or_name(brms: Brms, named: str, logs: LogCapture) -> None:
    dag_run = run_dag(deploy_dag(brms.project_id, brms.release_id, named))
    assert states(dag_run) == {"deploy": "success"}
    [sent] = brms.deploys()
    assert sent.json["environmentId"] == brms.env["dev"] and xcom(dag_run, "deploy", "environment_id") == brms.env["dev"]
    assert f"environment_id {named!r} is environment Development (dev), id {brms.env['dev']}, approval mode none" in logs.text
    assert xcom(dag_run, "deploy", "summary")["status"] == "completed"


def test_unknown_environment_lists_the_environments(brms: Brms, logs: LogCapture) -> None:
    assert states(run_dag(deploy_dag(brms.project_id, brms.release_id, "stage"))) == {"deploy": "failed"}
    assert "environment_id 'stage': no environment of project" in logs.text
    assert f"Staging (staging), id {brms.env['staging']}" in logs.text and f"Development (dev), id {brms.env['dev']}" in logs.text
    assert brms.deploys() == []


def test_ambiguous_environment_lists_the_candidates(emulator: BuddyEmulator, logs: LogCapture) -> None:
    project_id, envs, release = approved_project(emulator)
    assert states(run_dag(deploy_dag(project_id, release, "QA"))) == {"deploy": "failed"}
    assert "environment_id 'QA': 2 environments of project" in logs.text and "give the id" in logs.text
    assert envs["qa"] in logs.text and envs["qa-eu"] in logs.text
    assert emulator.requests_to("POST", r"/releases/deploy$") == []


def test_an_id_is_used_as_given_when_environments_cannot_be_listed(brms: Brms, emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_fault(Fault(kind="status", status=403, body={"statusCode": 403, "message": "Forbidden resource"}, path="/environments$"))
    dag_run = run_dag(deploy_dag(brms.project_id, brms.release_id, brms.env["dev"]))
    assert states(dag_run) == {"deploy": "success"} and brms.deploys()[0].json["environmentId"] == brms.env["dev"]
    assert f"deploying to environment id {brms.env['dev']} as given" in logs.text


@pytest.mark.parametrize("answer", ["run", "id", "empty"])
def test_change_request_fails_the_task_without_retrying(emulator: BuddyEmulator, answer: str, logs: LogCapture) -> None:
    project_id, envs, release = approved_project(emulator, answer)
    dag_run = run_dag(deploy_dag(project_id, release, "production", retries=2, retry_delay=timedelta(seconds=0)))
    assert states(dag_run) == {"deploy": "failed"}
    assert len(emulator.requests_to("POST", r"/releases/deploy$")) == 1  # not retried: a retry would make another request
    [request] = emulator.gorules_projects()[-1]["change_requests"]
    assert xcom(dag_run, "deploy", "change_request_id") == request["id"]
    assert xcom(dag_run, "deploy", "run_id") is None and emulator.gorules_runs(project_id) == []
    assert f"GoRules made change request {request['id']} (pending) to deploy release {release}" in logs.text
    assert "GoRulesChangeRequestError" in logs.text and "on_change_request='fail'" in logs.text
    assert "no new run for it appeared" not in logs.text


def test_change_request_as_success_carries_its_id(emulator: BuddyEmulator, logs: LogCapture) -> None:
    project_id, envs, release = approved_project(emulator)
    dag_run = run_dag(deploy_dag(project_id, release, envs["production"], on_change_request="succeed"))
    assert states(dag_run) == {"deploy": "success"}
    [request] = emulator.gorules_projects()[-1]["change_requests"]
    assert xcom(dag_run, "deploy") == request["id"] == xcom(dag_run, "deploy", "change_request_id")
    summary = xcom(dag_run, "deploy", "summary")
    assert summary["change_request_id"] == request["id"] and summary["status"] == "pending"
    assert summary["environment"] == "Production (production)" and summary["environment_id"] == envs["production"]
    assert "finishing with its id (on_change_request='succeed')" in logs.text


def test_on_change_request_is_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="on_change_request must be one of 'fail', 'succeed'"):
        GoRulesDeployReleaseOperator(task_id="d", project_id="p", release_id="r", environment_id="e", on_change_request="wait")
