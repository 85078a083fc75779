"""
Secrets never leak: a recognisable token and encrypted variable values go through every operator (the
human-in-the-loop approval included), the sensor and the trigger, in success, failure, HTTP errors and
retries. Everything a person or another system can see is captured — logs (ours and Airflow's), exception
texts, XComs, rendered template fields, the serialized triggers and their events, every row of Airflow's
metadata database, and what Buddy (the emulator) received: the secrets appear only in the
``Authorization`` header and in the encrypted variable's own ``value`` in a request body. ``repr()`` of
hooks, settings, HTTP cores, models and triggers hides them.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.exceptions import BuddyError
from airflow_provider_buddy.hooks._buddy_api import BUDDY_ERRORS
from airflow_provider_buddy.hooks._connection import ClientSettings
from airflow_provider_buddy.hooks._http import HttpCore
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.models.buddy import ActionExecution, Execution, RunPipelineRequest, Variable
from airflow_provider_buddy.operators.approval import BuddyApprovalOperator
from airflow_provider_buddy.operators.buddy import (
    BuddyApproveExecutionOperator,
    BuddyCancelExecutionOperator,
    BuddyClearPipelineCacheOperator,
    BuddyRetryExecutionOperator,
    BuddyRunPipelineOperator,
)
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from airflow_provider_buddy.triggers.buddy import BuddyExecutionTrigger
from tests.airflow_support import HitlResponder, rendered_fields, run_dag, states
from tests.conftest import WORKSPACE, LogCapture, connection_json, fast_settings

# Built from parts: Airflow stores a DAG file's source (this file) in its database, which is scanned below.
TOKEN = "-".join(("tok", "LEAKCHECK", "9f3a6c21"))
STALE_TOKEN = "-".join(("tok", "LEAKCHECK", "stale", "44d0"))
RUN_SECRET = "-".join(("enc", "LEAKCHECK", "run", "5b2d7e"))
ANSWER_SECRET = "-".join(("enc", "LEAKCHECK", "answer", "91aa3f"))
TEXT_SECRET = "-".join(("enc", "LEAKCHECK", "text", "3c8e0b"))
TOKENS = (TOKEN, STALE_TOKEN)
ENCRYPTED = (RUN_SECRET, ANSWER_SECRET, TEXT_SECRET)
SECRETS = TOKENS + ENCRYPTED

OK, FAILS, ASK, LONG, GATE, RETRIED, ECHO = 1, 2, 3, 4, 5, 11, 12
ECHO_BODY = {"errors": [{"message": f"upstream refused Authorization: Bearer {TOKEN} (token {TOKEN})"}]}
RUN_VARIABLES = [{"key": "DEPLOY_PASSWORD", "value": "{{ var.value.deploy_value }}", "encrypted": True}, {"key": "TARGET", "value": "prod"}]
ANSWERS = [{"key": "NOTES", "value": "{{ var.value.notes_value }}", "encrypted": True}]


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def secret_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[BuddyEmulator]:
    """The emulator accepting the secret token, ``buddy_default`` and a stale connection, and Airflow Variables
    holding the encrypted values (names Airflow would not mask by itself)."""
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0) as emu:
        # runs last 2 s (40 emulated), so the deferrable tasks find them going however busy the machine: each defers
        build = [{"id": 10, "name": "Build", "type": "BUILD", "duration": 40, "outputted_variables": [{"key": "VERSION", "value": "1.0"}]}]
        emu.add_pipeline("web", OK, "ok", actions=build)
        emu.add_pipeline(
            "web",
            FAILS,
            "fails",
            actions=[{"id": 20, "name": "Unit tests", "type": "BUILD", "duration": 40}],
            outcome="FAILED",
            error_message="2 tests failed",
        )
        emu.add_pipeline(
            "web",
            ASK,
            "ask",
            actions=[
                {"id": 30, "name": "Build", "type": "BUILD", "duration": 0},
                {"id": 31, "name": "Release notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "NOTES", "value": "tbd"}]},
            ],
        )
        emu.add_pipeline("web", LONG, "long", actions=[{"id": 40, "name": "Deploy", "type": "BUILD", "duration": 10**6}])
        emu.add_pipeline(
            "web", GATE, "gate", actions=[{"id": 50, "name": "Approve production", "type": "WAIT_FOR_APPLY"}], wait_shown_on="action"
        )
        emu.add_pipeline("web", RETRIED, "retried", actions=build)
        emu.add_pipeline("web", ECHO, "echo", actions=build)
        monkeypatch.setenv("AIRFLOW_CONN_BUDDY_DEFAULT", connection_json(emu.url, token=TOKEN))
        monkeypatch.setenv("AIRFLOW_CONN_BUDDY_STALE", connection_json(emu.url, token=STALE_TOKEN))
        monkeypatch.setenv("AIRFLOW_VAR_DEPLOY_VALUE", RUN_SECRET)
        monkeypatch.setenv("AIRFLOW_VAR_NOTES_VALUE", ANSWER_SECRET)
        monkeypatch.setenv("AIRFLOW_VAR_VARIABLES_TEXT", json.dumps([{"key": "PASS", "value": TEXT_SECRET, "encrypted": True}]))
        yield emu


@pytest.fixture
def trigger_traffic(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Every ``serialize()`` of a Buddy trigger (what the triggerer stores) and every event it fires."""
    seen: dict[str, list[Any]] = {"serialized": [], "events": []}
    serialize, run = BuddyExecutionTrigger.serialize, BuddyExecutionTrigger.run

    def recording_serialize(self: BuddyExecutionTrigger) -> tuple[str, dict[str, Any]]:
        result = serialize(self)
        seen["serialized"].append(result)
        return result

    async def recording_run(self: BuddyExecutionTrigger) -> Any:
        async for event in run(self):
            seen["events"].append(event.payload)
            yield event

    monkeypatch.setattr(BuddyExecutionTrigger, "serialize", recording_serialize)
    monkeypatch.setattr(BuddyExecutionTrigger, "run", recording_run)
    return seen


def check_requests(emulator: BuddyEmulator) -> dict[str, int]:
    """Secrets in what Buddy received: only in the Authorization header and an encrypted variable's value."""
    allowed_where: dict[str, int] = {"authorization": 0, "encrypted value": 0}
    for request in emulator.requests:
        for name, value in request.headers.items():
            if name == "authorization":
                assert value in {f"Bearer {t}" for t in TOKENS}, value
                allowed_where["authorization"] += 1
            else:
                assert leaks(value) == [], (name, request.path)
        assert leaks(request.path) == [] and leaks(json.dumps(request.query)) == []

        def walk(node: Any, path: str, owner: Any = None) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    walk(value, f"{path}.{key}", node)
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    walk(value, f"{path}[{index}]")
            elif isinstance(node, str) and leaks(node):
                assert path.startswith(".variables[") and path.endswith(".value") and owner.get("encrypted") is True, path
                assert all(secret in ENCRYPTED for secret in leaks(node)) and node in ENCRYPTED, path
                allowed_where["encrypted value"] += 1

        walk(request.json, "")
    return allowed_where


def database_rows() -> Iterator[tuple[str, str]]:
    """Every row of every table of Airflow's metadata database, as text."""
    from airflow.utils.session import create_session
    from sqlalchemy import inspect, text

    with create_session() as session:
        for table in inspect(session.get_bind()).get_table_names():
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                yield table, " ".join(str(value) for value in row)


@pytest.mark.usefixtures("airflow_db")
def test_secrets_through_every_operator_sensor_and_trigger(
    secret_emulator: BuddyEmulator, trigger_traffic: dict[str, list[Any]], logs: LogCapture, airflow_api: Any
) -> None:
    emu = secret_emulator
    runs = r"/pipelines/\d+/executions$"
    emu.add_fault(Fault(kind="status", status=500, body=ECHO_BODY, method="GET", path=rf"/pipelines/{RETRIED}/executions$", times=2))
    emu.add_fault(Fault(kind="status", status=502, body=ECHO_BODY, method="POST", path=rf"/pipelines/{RETRIED}/executions$", when="after"))
    emu.add_fault(Fault(kind="malformed", method="GET", path=rf"/pipelines/{RETRIED}/executions/\d+$", times=2))
    emu.add_fault(Fault(kind="status", status=500, body=ECHO_BODY, method="GET", path=rf"/pipelines/{ECHO}/executions/\d+$", times=None))
    with DAG(dag_id="secrets", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        common: dict[str, Any] = {"project_name": "web", "poll_interval": 0.1}
        BuddyRunPipelineOperator(task_id="run_deferred", pipeline_id=OK, variables=RUN_VARIABLES, deferrable=True, **common)
        BuddyRunPipelineOperator(task_id="run_in_worker", pipeline_id=OK, variables=RUN_VARIABLES, deferrable=False, **common)
        BuddyRunPipelineOperator(task_id="run_fails", pipeline_id=FAILS, variables=RUN_VARIABLES, deferrable=True, **common)
        BuddyRunPipelineOperator(task_id="run_retried", pipeline_id=RETRIED, variables=RUN_VARIABLES, deferrable=True, **common)
        # Buddy answers every look with a 500 echoing the token: the wait goes on (the run may be fine) until the timeout
        BuddyRunPipelineOperator(
            task_id="run_server_echoes_token", pipeline_id=ECHO, variables=RUN_VARIABLES, execution_timeout=timedelta(seconds=10), **common
        )
        BuddyRunPipelineOperator(task_id="run_stale_token", pipeline_id=OK, variables=RUN_VARIABLES, buddy_conn_id="buddy_stale", **common)
        BuddyRunPipelineOperator(task_id="run_variables_as_text", pipeline_id=OK, variables="{{ var.value.variables_text }}", **common)
        BuddyRunPipelineOperator(
            task_id="run_answers_gate", pipeline_id=ASK, on_approval="approve", approval_variables=ANSWERS, deferrable=True, **common
        )

        @task(task_id="start")
        def start() -> dict[str, int]:
            """Runs started in Buddy for the other operators and the sensors."""
            ids = {
                name: int(emu.start_execution("web", pipeline)["id"])
                for name, pipeline in (("approve", ASK), ("sense", ASK), ("poke", ASK), ("cancel", LONG), ("retry", FAILS), ("gate", GATE))
            }
            for _ in range(200):
                if emu.execution("web", FAILS, ids["retry"])["status"] == "FAILED":
                    return ids
                time.sleep(0.05)
            raise AssertionError("the run to retry never failed")

        def started(name: str) -> str:
            return f"{{{{ ti.xcom_pull(task_ids='start')['{name}'] }}}}"

        start() >> [
            BuddyApproveExecutionOperator(
                task_id="approve", project_name="web", pipeline_id=ASK, execution_id=started("approve"), variables=ANSWERS
            ),
            BuddyExecutionSensor(
                task_id="sense",
                project_name="web",
                pipeline_id=ASK,
                execution_id=started("sense"),
                on_approval="approve",
                approval_variables=ANSWERS,
                poke_interval=0.1,
                deferrable=True,
            ),
            BuddyExecutionSensor(
                task_id="poke",
                project_name="web",
                pipeline_id=ASK,
                execution_id=started("poke"),
                on_approval="approve",
                approval_variables=ANSWERS,
                poke_interval=0.1,
                deferrable=False,
            ),
            BuddyCancelExecutionOperator(task_id="cancel", project_name="web", pipeline_id=LONG, execution_id=started("cancel")),
            BuddyRetryExecutionOperator(
                task_id="retry",
                project_name="web",
                pipeline_id=FAILS,
                execution_id=started("retry"),
                wait_for_completion=True,
                deferrable=True,
                poll_interval=0.1,
            ),
            BuddyClearPipelineCacheOperator(task_id="clear_cache", project_name="web", pipeline_id="ok"),
            BuddyApprovalOperator(task_id="approval", project_name="web", pipeline_id=GATE, execution_id=started("gate")),
        ]
    responder = HitlResponder(airflow_api)
    responder.answer("secrets", "approval", "Approve")  # a person approves in Airflow's UI
    dag_run = run_dag(dag)
    responder.join()
    failed = {"run_fails", "run_server_echoes_token", "run_stale_token", "run_variables_as_text"}
    assert states(dag_run) == {t.task_id: "failed" if t.task_id in failed else "success" for t in dag.tasks}

    # what Buddy received: the secrets were sent, and only where they belong
    where = check_requests(emu)
    assert where["authorization"] == len(emu.requests) and where["encrypted value"] >= 8
    sent = [r.json for r in emu.requests_to("POST", runs) if "run_answers_gate" not in r.json["comment"]]
    assert len(sent) == 5 and all({"key": "DEPLOY_PASSWORD", "value": RUN_SECRET, "encrypted": True} in body["variables"] for body in sent)
    assert [r.json["operation"] for r in emu.requests_to("PATCH", r"/pipelines/5/")] == ["APPLY"]  # the approval, from Airflow's UI
    answers = [r.json for r in emu.requests_to("PATCH", ".") if r.json.get("operation") == "APPLY_VARIABLES"]
    assert len(answers) == 4 and all(body["variables"] == [{"key": "NOTES", "value": ANSWER_SECRET, "encrypted": True}] for body in answers)
    assert any(r.headers["authorization"] == f"Bearer {STALE_TOKEN}" for r in emu.requests)
    assert not any(TEXT_SECRET in json.dumps(r.json) for r in emu.requests)  # that task failed before sending anything

    # every log line (ours and Airflow's), with the failures' tracebacks and messages
    text = logs.text
    assert leaks(text) == [], [line for line in text.splitlines() if leaks(line)][:5]
    for expected in (
        "BuddyAuthenticationError",
        "BuddyExecutionFailedError",
        "upstream refused Authorization: Bearer ***",
        "got a string (not shown",
        "Approved Buddy execution",
        "APPLY_VARIABLES NOTES=***",
    ):
        assert expected in text, expected

    # rendered template fields as Airflow stored them (the UI's Rendered Template view): masked, not just masked on display
    for t in dag.tasks:
        fields = rendered_fields(dag_run, t.task_id)
        assert leaks(json.dumps(fields, default=str)) == [], (t.task_id, fields)
    assert {"key": "DEPLOY_PASSWORD", "value": "***", "encrypted": True} in rendered_fields(dag_run, "run_in_worker")["variables"]
    assert rendered_fields(dag_run, "sense")["approval_variables"] == [{"key": "NOTES", "value": "***", "encrypted": True}]

    # triggers: what the triggerer would store, and what they fired
    assert len(trigger_traffic["serialized"]) >= 6 and len(trigger_traffic["events"]) >= 6
    assert leaks(json.dumps(trigger_traffic, default=str)) == []

    # XComs, task instances (next_kwargs, errors), triggers, RTIF, logs table...: every row of the metadata database
    leaked_rows = [(table, row[:200]) for table, row in database_rows() if leaks(row)]
    assert leaked_rows == []


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "poke"])
def test_sensor_rendered_answers_are_masked_even_without_a_gate(deferrable: bool) -> None:
    """The masking happens at rendering: before Airflow records the rendered fields, whatever the task does next."""
    from airflow.sdk._shared.secrets_masker import redact

    secret = f"enc-LEAKCHECK-render-{int(deferrable)}"
    sensor = BuddyExecutionSensor(
        task_id="s",
        project_name="web",
        pipeline_id=1,
        execution_id=1,
        deferrable=deferrable,
        approval_variables=[{"key": "K", "value": "{{ params.v }}", "encrypted": True}],
    )
    import jinja2

    sensor.render_template_fields({"params": {"v": secret}}, jinja2.Environment())
    assert sensor.approval_variables[0]["value"] == secret  # rendered for use...
    assert secret not in str(redact(sensor.approval_variables))  # ...and registered with the masker


async def test_hook_and_trigger_error_paths(secret_emulator: BuddyEmulator, caplog: pytest.LogCaptureFixture) -> None:
    """Exceptions (message, repr, args, the whole chain and traceback), retry logs and trigger events on every error path."""
    caplog.set_level(logging.DEBUG)
    emu = secret_emulator
    run = emu.start_execution("web", LONG)
    path = rf"/executions/{run['id']}$"
    hook = BuddyHook(settings=fast_settings(emu.url, token=TOKEN, timeout=0.5))
    stale = BuddyHook(settings=fast_settings(emu.url, token=STALE_TOKEN))
    failures: list[BaseException] = []
    faults = [
        Fault(kind="status", status=500, body=ECHO_BODY, method="GET", path=path, times=None),
        Fault(kind="status", status=400, body=ECHO_BODY, method="PATCH", path=path),
        Fault(kind="status", status=429, body=json.dumps(ECHO_BODY), headers={"Retry-After": "0"}, method="GET", path=path, times=None),
        Fault(kind="malformed", method="GET", path=path, times=None),
        Fault(kind="drop", method="GET", path=path, times=None),
        Fault(kind="delay", delay=1.0, method="POST", path=r"/executions$", when="after"),
    ]

    def read() -> Any:
        return hook.get_execution("web", LONG, run["id"])

    def aread() -> Any:
        return hook.aget_execution("web", LONG, run["id"])

    encrypted = {"variables": [{"key": "P", "value": RUN_SECRET, "encrypted": True}]}
    calls = [
        (read, aread),
        (lambda: hook.cancel_execution("web", LONG, run["id"]), lambda: hook.acancel_execution("web", LONG, run["id"])),
        (read, aread),
        (read, aread),
        (read, aread),
        (lambda: hook.run_pipeline("web", OK, encrypted), lambda: hook.arun_pipeline("web", OK, encrypted)),
    ]
    for fault, (call, acall) in zip(faults, calls, strict=True):
        for asynchronous in (False, True):
            emu.clear_faults()
            emu.add_fault(fault)
            try:
                if asynchronous:
                    await acall()
                else:
                    call()
            except BuddyError as exc:
                failures.append(exc)
    await hook.aclose()
    emu.clear_faults()
    for call in (lambda: stale.get_execution("web", LONG, run["id"]), lambda: stale.approve_execution("web", ASK, 1, {"N": ANSWER_SECRET})):
        try:
            call()
        except BuddyError as exc:
            failures.append(exc)
    async_hook = BuddyHook(settings=fast_settings(emu.url, token=STALE_TOKEN))
    try:
        await async_hook.aget_execution("web", LONG, run["id"])
    except BuddyError as exc:
        failures.append(exc)
    finally:
        await async_hook.aclose()
    assert len(failures) == 15
    for exc in failures:
        chain = "".join(traceback.format_exception(exc))
        assert leaks(chain) == [] and leaks(repr(exc)) == [] and leaks(repr(exc.args)) == [], chain
    assert any("Bearer ***" in str(exc) for exc in failures)

    # the trigger: a stale token and a server echoing the token end in error events without them
    for conn_id in ("buddy_stale", "buddy_default"):
        if conn_id == "buddy_default":  # a server echoing the token it was sent
            emu.add_fault(Fault(kind="status", status=403, body=ECHO_BODY, method="GET", path=path))
        trig = BuddyExecutionTrigger(
            buddy_conn_id=conn_id, project_name="web", pipeline_id=LONG, execution_id=run["id"], poll_interval=0.05
        )
        event = None
        async for fired in trig.run():
            event = fired.payload
            break
        assert event is not None and event["status"] == "error"
        assert leaks(json.dumps(event)) == [] and leaks(json.dumps(trig.serialize())) == [] and leaks(repr(trig)) == []
    assert leaks(caplog.text) == [] and "retry" in caplog.text


def test_repr_hides_secrets() -> None:
    settings = fast_settings("https://buddy.example.com", token=TOKEN)
    hook = BuddyHook(settings=settings)
    core = HttpCore(settings, BUDDY_ERRORS)
    # a server that (wrongly) sends encrypted values back in plain text
    hostile = {"key": "PASS", "value": RUN_SECRET, "encrypted": True}
    action = ActionExecution.model_validate(
        {"action_execution_id": "a1", "status": "SUCCESSFUL", "passed_variables": [hostile], "outputted_variables": [hostile]}
    )
    execution = Execution.model_validate({"id": 1, "status": "SUCCESSFUL", "action_executions": [action.model_dump()]})
    request = RunPipelineRequest(variables=[hostile, {"key": "PLAIN", "value": "visible"}])
    objects: list[Any] = [
        hook,
        settings,
        core,
        Variable(**hostile),
        action,
        execution,
        request,
        ClientSettings(base_url="https://x", token=TOKEN),
    ]
    for obj in objects:
        assert leaks(repr(obj)) == [] and leaks(str(obj)) == [], type(obj).__name__
    assert "visible" in repr(request) and "***" in repr(execution)
    assert execution.outputted_variables() == {"PASS": "***"}
    assert request.to_api()["variables"][0] == hostile  # the API still gets the value


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (BuddyRunPipelineOperator, "variables"),
        (BuddyRunPipelineOperator, "approval_variables"),
        (BuddyApproveExecutionOperator, "variables"),
        (BuddyExecutionSensor, "approval_variables"),
    ],
)
def test_bad_variables_are_refused_without_echoing_their_values(cls: type, name: str) -> None:
    """A wrongly shaped encrypted value (here a list) is refused at parse time, naming the parameter, not showing the value."""
    kwargs: dict[str, Any] = {"project_name": "web", "pipeline_id": 1}
    if cls is not BuddyRunPipelineOperator:
        kwargs["execution_id"] = 5
    with pytest.raises(ValueError) as info:
        cls(task_id="t", **kwargs, **{name: [{"key": "PASS", "value": [RUN_SECRET], "encrypted": True}]})
    assert str(info.value).startswith(f"{name}: ") and leaks(str(info.value)) == [], str(info.value)
