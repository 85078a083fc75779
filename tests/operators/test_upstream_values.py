"""
Arguments that come from upstream tasks, as DAG authors write them today: ``task.output`` (also with an XCom key),
a TaskFlow result, a value inside a dict. For every argument of every Buddy and GoRules operator and sensor that
can take one: the DAG parses (no import error), Airflow sets the dependency itself, and the DAG runs in real
Airflow with the emulator receiving the request built from the resolved values. A value that resolves to the
wrong type fails its task, naming the parameter, before anything is sent.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, XComArg, task

from airflow_provider_buddy.operators.approval import BuddyApprovalOperator
from airflow_provider_buddy.operators.buddy import (
    BuddyApproveExecutionOperator,
    BuddyCancelExecutionOperator,
    BuddyClearPipelineCacheOperator,
    BuddyRetryExecutionOperator,
    BuddyRunPipelineOperator,
    BuddyRunScheduledExecutionOperator,
)
from airflow_provider_buddy.operators.gorules import GoRulesCancelRunOperator, GoRulesDeployReleaseOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.sensors.gorules import GoRulesRunSensor
from airflow_provider_buddy.testing import BuddyEmulator
from airflow_provider_buddy.utils.arguments import pulls_xcom, resolved_later
from tests.airflow_support import HitlResponder, rendered_fields, run_dag, states, xcom
from tests.conftest import FAST_EXTRA, TOKEN, WORKSPACE, LogCapture
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture  # noqa: F401

pytestmark = pytest.mark.usefixtures("airflow_db")
_ids = itertools.count()

TARGET = {"project_name", "pipeline_id", "workspace"}
EXECUTION = TARGET | {"execution_id"}
REQUEST = {"branch", "tag", "pull_request", "revision", "from_revision", "comment", "environment", "package_version"}
FROM_UPSTREAM: dict[type, set[str]] = {
    BuddyRunPipelineOperator: TARGET | REQUEST | {"variables", "approval_variables", "actions_to_run"},
    BuddyExecutionSensor: EXECUTION | {"approval_variables"},
    BuddyRetryExecutionOperator: EXECUTION | {"approval_variables"},
    BuddyRunScheduledExecutionOperator: EXECUTION | {"approval_variables"},
    BuddyCancelExecutionOperator: EXECUTION,
    BuddyApproveExecutionOperator: EXECUTION | {"variables"},
    BuddyClearPipelineCacheOperator: TARGET,
    BuddyApprovalOperator: EXECUTION,
    GoRulesDeployReleaseOperator: {"project_id", "release_id", "environment_id", "comment"},
    GoRulesRunSensor: {"project_id", "run_id"},
    GoRulesCancelRunOperator: {"project_id", "run_id", "comment"},
}
"""Every argument that may come from upstream, by class: ids, names, variables, comments."""

ASK = [
    {"id": 29, "name": "Prepare", "type": "BUILD", "duration": 1},
    {"id": 30, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]},
]
GATE = [
    {"id": 20, "name": "Deploy staging", "type": "BUILD", "duration": 1},
    {"id": 21, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
]
ANSWERS = {"NOTES": "Faster builds"}


@pytest.mark.parametrize("cls", list(FROM_UPSTREAM), ids=lambda cls: cls.__name__)
def test_every_argument_from_upstream_is_a_template_field_and_checked(cls: type) -> None:
    """A template field is what Airflow resolves (XComArg, template) and takes a dependency from; each one is checked."""
    fields = set(cls.template_fields) - {"subject", "body"}  # the approval gate's texts (Airflow's HITL fields)
    assert fields == FROM_UPSTREAM[cls]
    checked = set(getattr(cls, "argument_checks", {}))
    assert checked <= fields
    assert fields - checked <= REQUEST  # the run request's fields: checked together, by building the request


def test_resolved_later() -> None:
    with DAG(dag_id=f"resolved_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def value() -> int:
            return 1

        result = value()
    assert isinstance(result, XComArg)
    for later in (result, result["key"], "{{ params.x }}", "{% if 1 %}x{% endif %}", {"A": result}, [1, result]):
        assert resolved_later(later), later
    for now in (1, "main", "{ not a template }", {"A": "{{ x }}"}, ["{{ x }}"], None, Path("/tmp"), {"A": [1, {"B": 2}]}):
        assert not resolved_later(now), now


def test_a_dag_passing_output_parses_with_its_dependencies(tmp_path: Path) -> None:
    """The DAG file the issue reported as an import error: ``.output`` into each id, through Airflow's own DagBag."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "from_upstream.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG, task\n"
        "from airflow_provider_buddy.operators.buddy import (\n"
        "    BuddyCancelExecutionOperator, BuddyRetryExecutionOperator, BuddyRunPipelineOperator)\n"
        "from airflow_provider_buddy.operators.gorules import GoRulesCancelRunOperator, GoRulesDeployReleaseOperator\n"
        "from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor\n"
        "from airflow_provider_buddy.sensors.gorules import GoRulesRunSensor\n"
        "with DAG(dag_id='from_upstream', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    @task\n"
        "    def pipeline() -> str:\n"
        "        return 'deploy'\n"
        "    start = BuddyRunPipelineOperator(task_id='start', project_name='web', pipeline_id=pipeline(), wait_for_completion=False)\n"
        "    BuddyExecutionSensor(task_id='wait', project_name='web', pipeline_id=1, execution_id=start.output)\n"
        "    BuddyCancelExecutionOperator(task_id='cancel', project_name='web', pipeline_id=1, execution_id=start.output)\n"
        "    BuddyRetryExecutionOperator(task_id='retry', project_name='web', pipeline_id=1, execution_id=start.output)\n"
        "    deploy = GoRulesDeployReleaseOperator(task_id='deploy', project_id='p', release_id='r', environment_id='e')\n"
        "    GoRulesRunSensor(task_id='rollout', project_id='p', run_id=deploy.output)\n"
        "    GoRulesCancelRunOperator(task_id='cancel_run', project_id='p', run_id=deploy.output, comment='Superseded')\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.dags["from_upstream"]
    upstream = {t.task_id: t.upstream_task_ids for t in dag.tasks}
    assert upstream == {
        "pipeline": set(),
        "start": {"pipeline"},
        "wait": {"start"},
        "cancel": {"start"},
        "retry": {"start"},
        "deploy": set(),
        "rollout": {"deploy"},
        "cancel_run": {"deploy"},
    }


def _from_upstream(dag: DAG) -> dict[type, set[str]]:
    """Which arguments of which classes the DAG gives a value resolved from upstream (an XComArg, maybe in a dict)."""
    found: dict[type, set[str]] = {}
    for op in dag.tasks:
        if type(op) not in FROM_UPSTREAM:
            continue  # the TaskFlow tasks
        for name in op.template_fields:
            if resolved_later(getattr(op, name)) and not isinstance(getattr(op, name), str):
                found.setdefault(type(op), set()).add(name)
    return found


# ---- Buddy: every argument of every operator, the sensor and the approval gate ----------------------------------
def buddy_dag() -> DAG:
    """
    One DAG where an upstream TaskFlow task gives every name, id, variable and comment, and each execution id comes
    from the ``.output`` of the run that started it (as an int, or as a digit string through a TaskFlow task).
    Nothing is wired with ``>>`` but the cancel before the retry.
    """
    with DAG(dag_id=f"buddy_upstream_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

        @task(multiple_outputs=True)
        def given() -> dict[str, Any]:
            return {
                "project": "web",
                "workspace": WORKSPACE,
                "notes": "notes",  # pipelines: by identifier, or by int id
                "gate": 2,
                "build": 1,
                "branch": "release/2.0",
                "tag": "v2.0",
                "pull_request": "pull/7",
                "revision": "c0ffee",
                "from_revision": "bead",
                "comment": "Release 2.0",
                "environment": "production",
                "package_version": "web:2.0",
                "actions": [29, 30],
                "answers": ANSWERS,
            }

        @task
        def as_text(execution_id: int) -> str:
            return str(execution_id)

        g = given()
        target: dict[str, Any] = {"project_name": g["project"], "workspace": g["workspace"]}
        fast: dict[str, Any] = {"poll_interval": 0.1}
        BuddyRunPipelineOperator(
            task_id="run",
            pipeline_id=g["notes"],
            branch=g["branch"],
            revision=g["revision"],
            from_revision=g["from_revision"],
            comment=g["comment"],
            environment=g["environment"],
            package_version=g["package_version"],
            variables={"TARGET": g["environment"]},  # an XComArg inside a dict
            actions_to_run=g["actions"],
            on_approval="approve",
            approval_variables=g["answers"],
            **target,
            **fast,
        )
        ask = BuddyRunPipelineOperator(
            task_id="ask", pipeline_id=g["notes"], pull_request=g["pull_request"], on_approval="succeed", **target, **fast
        )
        BuddyExecutionSensor(
            task_id="sense",
            pipeline_id=g["notes"],
            execution_id=ask.output,
            on_approval="approve",
            approval_variables=g["answers"],
            deferrable=True,
            poke_interval=0.1,
            **target,
        )
        asking = BuddyRunPipelineOperator(task_id="asking", pipeline_id=g["notes"], on_approval="succeed", **target, **fast)
        BuddyApproveExecutionOperator(
            task_id="approve", pipeline_id=g["notes"], execution_id=asking.output, variables=g["answers"], **target
        )
        by_tag = BuddyRunPipelineOperator(
            task_id="by_tag", pipeline_id=g["notes"], tag=g["tag"], wait_for_completion=False, **target, **fast
        )
        cancel = BuddyCancelExecutionOperator(task_id="cancel", pipeline_id=g["notes"], execution_id=as_text(by_tag.output), **target)
        retry = BuddyRetryExecutionOperator(
            task_id="retry",
            pipeline_id=g["notes"],
            execution_id=by_tag.output,
            wait_for_completion=True,
            on_approval="approve",
            approval_variables=g["answers"],
            **target,
            **fast,
        )
        cancel >> retry
        gate_run = BuddyRunPipelineOperator(task_id="gate_run", pipeline_id=g["gate"], on_approval="succeed", **target, **fast)
        BuddyApprovalOperator(task_id="gate", pipeline_id=g["gate"], execution_id=gate_run.output, **target)
        BuddyClearPipelineCacheOperator(task_id="clear", pipeline_id=g["build"], **target)
        later = datetime.now(timezone.utc) + timedelta(days=3)
        scheduled = BuddyRunPipelineOperator(
            task_id="scheduled", pipeline_id=g["notes"], delay_until=later, wait_for_completion=False, **target, **fast
        )
        BuddyRunScheduledExecutionOperator(
            task_id="start_now",
            pipeline_id=g["notes"],
            execution_id=scheduled.output,
            wait_for_completion=True,
            on_approval="approve",
            approval_variables=g["answers"],
            **target,
            **fast,
        )
    return dag


BUDDY_UPSTREAM = {
    "given": set(),
    "as_text": {"by_tag"},
    "run": {"given"},
    "ask": {"given"},
    "sense": {"given", "ask"},
    "asking": {"given"},
    "approve": {"given", "asking"},
    "by_tag": {"given"},
    "cancel": {"given", "as_text"},
    "retry": {"given", "by_tag", "cancel"},
    "gate_run": {"given"},
    "gate": {"given", "gate_run"},
    "clear": {"given"},
    "scheduled": {"given"},
    "start_now": {"given", "scheduled"},
}


def gorules_dag(brms: Brms) -> DAG:
    """Every GoRules argument from upstream: a TaskFlow task's values, the deploy's ``.output`` and ``.output["run_id"]``."""
    with DAG(dag_id=f"gorules_upstream_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

        @task(multiple_outputs=True)
        def given() -> dict[str, Any]:
            return {
                "project_id": brms.project_id,
                "release_id": brms.release_id,
                "qa": brms.env["qa"],
                "slow": brms.env["slow"],
                "comment": "Rules 1.4 from upstream",
                "reason": "Superseded by 1.5",
            }

        g = given()
        deploy = GoRulesDeployReleaseOperator(
            task_id="deploy",
            project_id=g["project_id"],
            release_id=g["release_id"],
            environment_id=g["qa"],
            comment=g["comment"],
            wait_for_completion=False,
        )
        GoRulesRunSensor(task_id="rollout", project_id=g["project_id"], run_id=deploy.output, deferrable=True, poke_interval=0.1)
        slow = GoRulesDeployReleaseOperator(
            task_id="slow", project_id=g["project_id"], release_id=g["release_id"], environment_id=g["slow"], wait_for_completion=False
        )
        GoRulesCancelRunOperator(task_id="cancel", project_id=g["project_id"], run_id=slow.output["run_id"], comment=g["reason"])
    return dag


GORULES_UPSTREAM = {"given": set(), "deploy": {"given"}, "rollout": {"given", "deploy"}, "slow": {"given"}, "cancel": {"given", "slow"}}


def test_the_dags_below_take_every_argument_from_upstream(brms: Brms) -> None:
    found = _from_upstream(buddy_dag())
    for cls, names in _from_upstream(gorules_dag(brms)).items():
        found.setdefault(cls, set()).update(names)
    assert found == FROM_UPSTREAM


@pytest.fixture
def pipelines(emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch) -> BuddyEmulator:
    emulator.add_pipeline(project="web", pipeline_id=2, identifier="gate", name="Gate", actions=GATE, wait_shown_on="action")
    emulator.add_pipeline(project="web", pipeline_id=3, identifier="notes", name="Notes", actions=ASK)
    # the connection names another workspace: every call reaches 'acme' only through the value given upstream
    conn = {"conn_type": "buddy", "host": emulator.url, "login": "not-this-one", "password": TOKEN, "extra": FAST_EXTRA}
    monkeypatch.setenv("AIRFLOW_CONN_BUDDY_DEFAULT", json.dumps(conn))
    return emulator


def patches(emulator: BuddyEmulator, execution_id: int) -> list[dict[str, Any]]:
    return [r.json for r in emulator.requests_to("PATCH", rf"/pipelines/\d+/executions/{execution_id}$") if r.status == 200]


def test_buddy_arguments_from_upstream_run(pipelines: BuddyEmulator, airflow_api: Any) -> None:
    emulator = pipelines
    dag = buddy_dag()
    assert {t.task_id: t.upstream_task_ids for t in dag.tasks} == BUDDY_UPSTREAM
    responder = HitlResponder(airflow_api)
    responder.answer(dag.dag_id, "gate", "Approve")
    dag_run = run_dag(dag)
    responder.join()
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    # pipelines by identifier: one lookup in the workspace (GET /identifiers?project=web&pipeline=...)
    elsewhere = [r.path for r in emulator.requests if not r.path.startswith(f"/workspaces/{WORKSPACE}/projects/web/")]
    assert elsewhere and set(elsewhere) == {f"/workspaces/{WORKSPACE}/identifiers"}, elsewhere

    posts = {r.json.get("comment", "").split(" [airflow:")[0]: r.json for r in emulator.requests_to("POST", r"/pipelines/3/executions$")}
    assert posts["Release 2.0"] == {
        "branch": {"name": "release/2.0"},
        "to_revision": {"revision": "c0ffee"},
        "from_revision": {"revision": "bead"},
        "comment": posts["Release 2.0"]["comment"],
        "environment": "production",
        "package_version": "web:2.0",
        "variables": [{"key": "TARGET", "value": "production"}],
        "actions_to_run": [29, 30],
    }
    assert posts[f"Started by Airflow: {dag.dag_id}.ask"]["pull_request"] == {"name": "pull/7"}
    assert posts[f"Started by Airflow: {dag.dag_id}.by_tag"]["tag"] == {"name": "v2.0"}

    answer = {"operation": "APPLY_VARIABLES", "variables": [{"key": "NOTES", "value": "Faster builds"}]}

    def sent(task_id: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in body.items() if k != "approve_action_id"} for body in patches(emulator, xcom(dag_run, task_id))]

    assert sent("run") == [answer]  # the run operator's approval_variables
    assert sent("ask") == [answer]  # the sensor's
    assert sent("asking") == [answer]  # the approve operator's variables
    assert sent("by_tag") == [{"operation": "CANCEL"}, {"operation": "RETRY"}, answer]  # cancel, then retry with its answers
    assert sent("gate_run") == [{"operation": "APPLY"}]  # the approval gate, answered in Airflow
    assert sent("scheduled") == [{"operation": "RUN_DELAYED"}, answer]  # started now, then its prompt answered
    assert xcom(dag_run, "start_now") == xcom(dag_run, "scheduled")
    assert xcom(dag_run, "sense")["execution_id"] == xcom(dag_run, "ask") and xcom(dag_run, "retry") == xcom(dag_run, "by_tag")
    assert xcom(dag_run, "gate", "buddy_decision")["execution_id"] == xcom(dag_run, "gate_run")
    assert emulator.cache_clears("web", 1) == 1
    assert rendered_fields(dag_run, "cancel")["execution_id"] == str(xcom(dag_run, "by_tag"))  # a digit string is fine


@pytest.mark.usefixtures("gorules_conn")
def test_gorules_arguments_from_upstream_run(brms: Brms, emulator: BuddyEmulator) -> None:
    dag = gorules_dag(brms)
    assert {t.task_id: t.upstream_task_ids for t in dag.tasks} == GORULES_UPSTREAM
    dag_run = run_dag(dag)
    assert set(states(dag_run).values()) == {"success"}, states(dag_run)
    deploys = {r.json["environmentId"]: r.json for r in brms.deploys()}
    assert deploys.keys() == {brms.env["qa"], brms.env["slow"]}
    qa = deploys[brms.env["qa"]]
    assert qa["releaseId"] == brms.release_id and qa["comment"].startswith("Rules 1.4 from upstream [airflow:")
    assert xcom(dag_run, "rollout")["run_id"] == xcom(dag_run, "deploy") and xcom(dag_run, "rollout")["status"] == "completed"
    cancelled = brms.run(xcom(dag_run, "slow"))
    assert cancelled["status"] == "cancelled" and cancelled["cancelledComment"] == "Superseded by 1.5"


# ---- wrong values from upstream: the task fails naming the parameter, nothing is sent ------------------------------
@pytest.mark.usefixtures("buddy_conn", "gorules_conn")
def test_wrong_values_from_upstream_fail_naming_the_parameter_before_anything_is_sent(emulator: BuddyEmulator, logs: LogCapture) -> None:
    with DAG(dag_id=f"wrong_upstream_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:

        @task
        def a_dict() -> dict[str, int]:
            return {"id": 5}

        @task
        def blank() -> str:
            return "  "

        @task
        def seven() -> int:
            return 7

        @task
        def text() -> str:
            return "NOTES=x"

        d, b, n, t = a_dict(), blank(), seven(), text()
        web: dict[str, Any] = {"project_name": "web", "pipeline_id": "build"}
        rules: dict[str, Any] = {"project_id": "p"}
        expected: list[tuple[Any, str]] = [
            (
                BuddyExecutionSensor(task_id="sense_execution_id", execution_id=d, deferrable=True, **web),
                "execution_id must be a positive whole number, got {'id': 5}",
            ),
            (
                BuddyExecutionSensor(task_id="poke_pipeline_id", project_name="web", pipeline_id=d, execution_id=1, deferrable=False),
                "pipeline_id must be an int id or a pipeline identifier/name, got {'id': 5}",
            ),
            (
                BuddyCancelExecutionOperator(task_id="cancel_execution_id", execution_id=b, **web),
                "execution_id must be a positive whole number, got '  '",
            ),
            (
                BuddyRetryExecutionOperator(task_id="retry_answers", execution_id=1, approval_variables=n, **web),
                "approval_variables: variables must be a dict or a list of {key, value, encrypted} objects, got int",
            ),
            (
                BuddyRunScheduledExecutionOperator(task_id="scheduled_execution_id", execution_id=b, **web),
                "execution_id must be a positive whole number, got '  '",
            ),
            (
                BuddyApproveExecutionOperator(task_id="approve_variables", execution_id=1, variables=t, **web),
                "variables: variables must be a dict or a list of {key, value, encrypted} objects, got str",
            ),
            (
                BuddyRunPipelineOperator(task_id="run_variables", variables=t, **web),
                "variables must be a dict or a list of {key, value, encrypted}, got a string",
            ),
            (BuddyRunPipelineOperator(task_id="run_refs", branch=t, tag=t, **web), "give at most one of branch, tag, pull_request"),
            (BuddyRunPipelineOperator(task_id="run_comment", comment=n, **web), "comment: Input should be a valid string"),
            (BuddyRunPipelineOperator(task_id="run_actions", actions_to_run=d, **web), "actions_to_run must be a list of action ids"),
            (
                BuddyClearPipelineCacheOperator(task_id="clear_project", project_name=n, pipeline_id=1),
                "project_name must be a non-empty string, got 7",
            ),
            (
                BuddyClearPipelineCacheOperator(task_id="clear_workspace", workspace=b, **web),
                "workspace must be a non-empty string, got '  '",
            ),
            (
                BuddyApprovalOperator(task_id="gate_execution_id", execution_id=d, retries=0, **web),
                "execution_id must be a positive whole number, got {'id': 5}",
            ),
            (GoRulesRunSensor(task_id="rules_run_id", run_id=d, **rules), "run_id must be a non-empty string, got {'id': 5}"),
            (
                GoRulesDeployReleaseOperator(task_id="deploy_environment", release_id="r", environment_id=b, **rules),
                "environment_id must be a non-empty string, got '  '",
            ),
            (
                GoRulesDeployReleaseOperator(task_id="deploy_comment", release_id="r", environment_id="e", comment=n, **rules),
                "comment must be a string, got 7",
            ),
            (GoRulesCancelRunOperator(task_id="cancel_run_comment", run_id="r", comment=b, **rules), "comment is required"),
            (
                GoRulesCancelRunOperator(task_id="cancel_run_project", project_id=n, run_id="r", comment="why"),
                "project_id must be a non-empty string, got 7",
            ),
        ]
    dag_run = run_dag(dag)
    outcome = states(dag_run)
    assert {task_id: outcome[task_id] for task_id in ("a_dict", "blank", "seven", "text")} == dict.fromkeys(
        ("a_dict", "blank", "seven", "text"), "success"
    )
    assert {op.task_id: outcome[op.task_id] for op, _ in expected} == {op.task_id: "failed" for op, _ in expected}
    text_logged = logs.text
    for op, message in expected:
        assert message in text_logged, (op.task_id, message)
        assert dag_run.get_task_instance(op.task_id).try_number == 1
    assert emulator.requests == []  # not even a read: the checks come first


def test_deferrable_sensors_given_output_start_on_a_worker_which_resolves_it() -> None:
    """
    Airflow 3.3's triggerer cannot pull XComs, so a sensor given ``.output`` (or a ``@dag`` parameter, or an XCom
    anywhere inside a list or dict, such as the approval answers) does not start in the triggerer: it starts on a
    worker, resolves the value, checks it, then defers. One given literals, or templates that pull no XCom, does.
    """
    from airflow.sdk import dag as dag_decorator
    from airflow.serialization.serialized_objects import DagSerialization

    @dag_decorator(dag_id=f"start_on_a_worker_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1))
    def pipeline(execution: int = 7) -> None:
        run = BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=1, wait_for_completion=False)
        deploy = GoRulesDeployReleaseOperator(task_id="deploy", project_id="p", release_id="r", environment_id="e")
        BuddyExecutionSensor(task_id="sense", project_name="web", pipeline_id=1, execution_id=run.output, deferrable=True)
        GoRulesRunSensor(task_id="rollout", project_id="p", run_id=deploy.output, deferrable=True)
        BuddyExecutionSensor(task_id="param", project_name="web", pipeline_id=1, execution_id=execution, deferrable=True)
        pulled = {"key": "NOTES", "value": "{{ ti.xcom_pull(task_ids='run', key='notes') }}"}
        given = {"key": "NOTES", "value": run.output}
        for task_id, answers in (("pulled", [pulled]), ("given", [given]), ("listed", [{"key": "A", "value": "x"}, given])):
            BuddyExecutionSensor(
                task_id=task_id, project_name="web", pipeline_id=1, execution_id=7, deferrable=True, on_approval="approve",
                approval_variables=answers,
            )  # fmt: skip
        GoRulesRunSensor(task_id="pull_template", project_id="p", run_id="{{ ti.xcom_pull('deploy') }}", deferrable=True)
        BuddyExecutionSensor(task_id="literal", project_name="web", pipeline_id=1, execution_id=7, deferrable=True)
        BuddyExecutionSensor(
            task_id="params", project_name="web", pipeline_id="{{ params.pipeline }}", execution_id=7, deferrable=True,
            on_approval="approve", approval_variables=[{"key": "NOTES", "value": "{{ params.notes }}"}],
        )  # fmt: skip

    dag = pipeline()
    loaded = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    on_a_worker = ("sense", "rollout", "param", "pulled", "given", "listed", "pull_template")
    assert [t for t in on_a_worker if loaded.get_task(t).start_from_trigger] == []
    assert loaded.get_task("literal").start_from_trigger and loaded.get_task("params").start_from_trigger
    assert dag.get_task("sense").upstream_task_ids == {"run"} and dag.get_task("rollout").upstream_task_ids == {"deploy"}
    assert dag.get_task("given").upstream_task_ids == {"run"} and dag.get_task("listed").upstream_task_ids == {"run"}


def test_pulls_xcom() -> None:
    with DAG(dag_id=f"pulls_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)):

        @task
        def value() -> int:
            return 1

        result = value()
    pull = "{{ ti.xcom_pull('x') }}"
    for pulls in (result, result["key"], pull, "{{ task_instance.XCOM_PULL('x') }}", [1, {"A": pull}], {"A": [result]}):
        assert pulls_xcom(pulls), pulls
    for not_pulling in (1, "xcom", "{{ params.x }}", ["{{ params.x }}"], {"xcom": "{{ ds }}"}, None, Path("/tmp")):
        assert not pulls_xcom(not_pulling), not_pulling
