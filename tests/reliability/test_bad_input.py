"""
Bad input: every parameter of every operator and of the sensor, given wrong types, empty values and
conflicting options, fails with a clear error that names the parameter — when the DAG is parsed if the
value is not templated, else when the task runs, before anything is sent to Buddy. Property tests then
feed the response parsing whatever a server might send.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, task
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_buddy.exceptions import BuddyError
from airflow_provider_buddy.hooks._http import retry_after_seconds
from airflow_provider_buddy.hooks.buddy import BuddyHook
from airflow_provider_buddy.models.buddy import ActionExecution, ActionLogs, Execution, Pipeline, Workspace
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
from airflow_provider_buddy.utils.buddy_waiting import decide, event_payload, summary_from_event
from airflow_provider_buddy.utils.waiting import ApprovalPolicy, Step
from tests.airflow_support import run_dag, states
from tests.conftest import TOKEN, WORKSPACE, LogCapture, fast_settings
from tests.reliability.conftest import SOAK

_ids = itertools.count()
NAIVE = datetime(2026, 1, 1)

RUN, RETRY, CANCEL, APPROVE, CLEAR, SENSOR, HITL = (
    BuddyRunPipelineOperator,
    BuddyRetryExecutionOperator,
    BuddyCancelExecutionOperator,
    BuddyApproveExecutionOperator,
    BuddyClearPipelineCacheOperator,
    BuddyExecutionSensor,
    BuddyApprovalOperator,
)
VALID: dict[type, dict[str, Any]] = {
    RUN: {"project_name": "web", "pipeline_id": 1},
    RETRY: {"project_name": "web", "pipeline_id": 1, "execution_id": 5},
    CANCEL: {"project_name": "web", "pipeline_id": 1, "execution_id": 5},
    APPROVE: {"project_name": "web", "pipeline_id": 1, "execution_id": 5},
    CLEAR: {"project_name": "web", "pipeline_id": 1},
    SENSOR: {"project_name": "web", "pipeline_id": 1, "execution_id": 5},
    HITL: {"project_name": "web", "pipeline_id": 1, "execution_id": 5},
}
ALL = (RUN, RETRY, CANCEL, APPROVE, CLEAR, SENSOR, HITL)
WAITING = (RUN, RETRY)  # operators that can wait on the execution they act on

# (classes, parameter, bad value, what the message must say); the parameter's name is always required in it
CASES: list[tuple[tuple[type, ...], str, Any, str]] = [
    # shared by every operator and the sensor
    (ALL, "project_name", "", "non-empty string"),
    (ALL, "project_name", "   ", "non-empty string"),
    (ALL, "project_name", None, "non-empty string"),
    (ALL, "project_name", 42, "non-empty string"),
    (ALL, "pipeline_id", 0, "positive whole number"),
    (ALL, "pipeline_id", -3, "positive whole number"),
    (ALL, "pipeline_id", True, ""),
    (ALL, "pipeline_id", 1.5, ""),
    (ALL, "pipeline_id", None, ""),
    (ALL, "pipeline_id", [1], ""),
    (ALL, "pipeline_id", "", ""),
    (ALL, "workspace", "", "non-empty string"),
    (ALL, "workspace", 7, "non-empty string"),
    (ALL, "buddy_conn_id", "", "non-empty string"),
    (ALL, "buddy_conn_id", None, "non-empty string"),
    ((RETRY, CANCEL, APPROVE, SENSOR, HITL), "execution_id", 0, "positive whole number"),
    ((RETRY, CANCEL, APPROVE, SENSOR, HITL), "execution_id", -1, "positive whole number"),
    ((RETRY, CANCEL, APPROVE, SENSOR, HITL), "execution_id", "abc", "positive whole number"),
    ((RETRY, CANCEL, APPROVE, SENSOR, HITL), "execution_id", None, "positive whole number"),
    ((RETRY, CANCEL, APPROVE, SENSOR, HITL), "execution_id", True, "positive whole number"),
    # waiting: the run and retry operators, and the sensor
    ((*WAITING, SENSOR), "on_approval", "later", "must be one of"),
    ((*WAITING, SENSOR), "on_approval", "", "must be one of"),
    ((*WAITING, SENSOR), "on_approval", 3, "must be one of"),
    ((*WAITING, SENSOR), "approval_variables", "NOTES=x", "must be a dict or a list"),
    ((*WAITING, SENSOR), "approval_variables", 5, "must be a dict or a list"),
    ((*WAITING, SENSOR), "approval_variables", [{"value": "x"}], "key"),
    ((*WAITING, SENSOR), "approval_variables", [{"key": "K", "value": "v", "encrypted": "very"}], "encrypted"),
    ((*WAITING, SENSOR), "log_tail_lines", -1, "whole number >= 0"),
    ((*WAITING, SENSOR), "log_tail_lines", 2.5, "whole number >= 0"),
    ((*WAITING, SENSOR), "log_tail_lines", True, "whole number >= 0"),
    ((*WAITING, SENSOR), "skipped_is_success", "yes", "True or False"),
    ((*WAITING, SENSOR), "deferrable", "no", "True or False"),
    (WAITING, "poll_interval", 0, "positive number of seconds"),
    (WAITING, "poll_interval", -10, "positive number of seconds"),
    (WAITING, "poll_interval", "10", "positive number of seconds"),
    (WAITING, "poll_interval", True, "positive number of seconds"),
    (WAITING, "wait_for_completion", "false", "True or False"),
    (WAITING, "cancel_on_kill", "no", "True or False"),
    ((SENSOR,), "poke_interval", -1, "poke_interval"),
    ((SENSOR,), "timeout", -5, "timeout"),
    ((SENSOR,), "mode", "sometimes", "mode"),
    # the run operator's request
    ((RUN,), "branch", 5, "valid string"),
    ((RUN,), "branch", "  ", "must not be empty"),
    ((RUN,), "tag", ["v1"], "valid string"),
    ((RUN,), "pull_request", "  ", "must not be empty"),
    ((RUN,), "revision", 1234, "valid string"),
    ((RUN,), "from_revision", "  ", "must not be empty"),
    ((RUN,), "comment", 5, "valid string"),
    ((RUN,), "refresh", "maybe", "True or False"),
    ((RUN,), "clear_cache", 3, "True or False"),
    ((RUN,), "priority", "urgent", "one of LOW, NORMAL, HIGH"),
    ((RUN,), "priority", 2, "one of LOW, NORMAL, HIGH"),
    ((RUN,), "variables", "PASS=x", "must be a dict or a list"),
    ((RUN,), "variables", 5, "must be a dict or a list"),
    ((RUN,), "variables", [{"value": "x"}], "key"),
    ((RUN,), "variables", [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}], "duplicate keys"),
    ((RUN,), "actions_to_run", 12, "list of action ids"),
    ((RUN,), "actions_to_run", "12", "list of action ids"),
    ((RUN,), "actions_to_run", [0], "positive whole number"),
    ((RUN,), "actions_to_run", ["build"], "positive whole number"),
    ((RUN,), "environment", "  ", "must not be empty"),
    ((RUN,), "environment", 7, "valid string"),
    ((RUN,), "package_version", "  ", "must not be empty"),
    ((RUN,), "delay_until", NAIVE, "timezone-aware"),
    ((RUN,), "delay_until", "2026-01-01T00:00:00Z", "timezone-aware"),
    ((RUN,), "reattach_on_retry", "yes", "True or False"),
    # the others
    ((CANCEL,), "fail_if_finished", "yes", "True or False"),
    ((APPROVE,), "variables", "NOTES=x", "must be a dict or a list"),
    ((APPROVE,), "variables", [{"key": ""}], "key"),
    ((HITL,), "defaults", "Maybe", "defaults"),  # Airflow's own HITL checks, through our subclass
    ((HITL,), "options", ["Yes"], "options"),
]
CONFLICTS: list[tuple[dict[str, Any], str]] = [
    ({"branch": "main", "tag": "v1"}, "at most one of branch, tag, pull_request"),
    ({"tag": "v1", "pull_request": "pull/3"}, "at most one of branch, tag, pull_request"),
    ({"branch": "main", "tag": "v1", "pull_request": "pull/3"}, "at most one of branch, tag, pull_request"),
]
TABLE = [
    pytest.param(cls, name, value, message, id=f"{cls.__name__}-{name}={value!r}")
    for classes, name, value, message in CASES
    for cls in classes
]


@pytest.mark.usefixtures("buddy_conn")
@pytest.mark.parametrize(("cls", "name", "value", "message"), TABLE)
def test_every_parameter_is_checked_at_parse_time(emulator: BuddyEmulator, cls: type, name: str, value: Any, message: str) -> None:
    # ValueError from this provider; poke_interval, timeout and mode are checked by Airflow's own sensor base
    with DAG(dag_id=f"bad_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)), pytest.raises(Exception) as info:
        cls(task_id="t", **{**VALID[cls], name: value})
    text = str(info.value)
    assert name in text and message in text, f"{type(info.value).__name__}: {text}"
    assert isinstance(info.value, ValueError) or name in ("poke_interval", "timeout", "mode", "defaults", "options")
    assert emulator.requests == []


@pytest.mark.usefixtures("buddy_conn")
@pytest.mark.parametrize(("kwargs", "message"), CONFLICTS)
def test_conflicting_refs_at_parse_time(emulator: BuddyEmulator, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BuddyRunPipelineOperator(task_id="t", **VALID[RUN], **kwargs)
    assert emulator.requests == []


def test_a_bad_parameter_is_a_dag_import_error(tmp_path: Path) -> None:
    """What a DAG author sees: the DAG file fails to import, naming the parameter."""
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bad_dag.py").write_text(
        "from datetime import datetime\n"
        "from airflow.sdk import DAG\n"
        "from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor\n"
        "with DAG(dag_id='bad_dag', schedule=None, start_date=datetime(2026, 1, 1)):\n"
        "    BuddyExecutionSensor(task_id='w', project_name='web', pipeline_id=1, execution_id=5, log_tail_lines=-1)\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert "bad_dag" not in bag.dags
    (error,) = bag.import_errors.values()
    assert "log_tail_lines must be a whole number >= 0" in error


@pytest.mark.usefixtures("airflow_db", "buddy_conn")
def test_rendered_values_and_missing_pipelines_fail_before_anything_is_sent(emulator: BuddyEmulator, logs: LogCapture) -> None:
    gate = [{"id": 20, "name": "Approve", "type": "WAIT_FOR_APPLY"}]
    emulator.add_pipeline("web", 2, "gate", actions=gate)
    emulator.add_pipeline("web", 3, "ask", actions=[{"id": 30, "name": "Notes", "type": "WAIT_FOR_VARIABLES", "variables": [{"key": "N"}]}])
    emulator.add_pipeline("web", 4, "untouched", actions=gate)
    waiting = emulator.start_execution("web", 2)
    asking = emulator.start_execution("web", 3)
    untouched = emulator.start_execution("web", 4)
    bad = {"text": "abc", "zero": "0", "blank": " ", "neg": "-2"}
    with DAG(dag_id=f"bad_rendered_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), params=bad) as dag:
        common: dict[str, Any] = {"project_name": "web"}
        tasks = [
            BuddyRunPipelineOperator(task_id="run_pipeline_blank", pipeline_id="{{ params.blank }}", **common),
            BuddyRunPipelineOperator(task_id="run_unknown_pipeline", pipeline_id="no-such-pipeline", **common),
            BuddyRunPipelineOperator(
                task_id="run_branch_and_tag", pipeline_id=1, branch="{{ params.text }}", tag="{{ params.text }}", **common
            ),
            BuddyRunPipelineOperator(task_id="run_variables_text", pipeline_id=1, variables="{{ params.text }}", **common),
            BuddyRetryExecutionOperator(task_id="retry_execution_zero", pipeline_id=1, execution_id="{{ params.zero }}", **common),
            BuddyRetryExecutionOperator(task_id="retry_unknown_pipeline", pipeline_id="no-such-pipeline", execution_id=1, **common),
            BuddyCancelExecutionOperator(task_id="cancel_execution_text", pipeline_id=1, execution_id="{{ params.text }}", **common),
            BuddyCancelExecutionOperator(task_id="cancel_unknown_pipeline", pipeline_id="no-such-pipeline", execution_id=1, **common),
            BuddyApproveExecutionOperator(task_id="approve_unknown_pipeline", pipeline_id="no-such-pipeline", execution_id=1, **common),
            BuddyApproveExecutionOperator(
                task_id="approve_variables_for_a_plain_gate", pipeline_id=2, execution_id=waiting["id"], variables={"N": "x"}, **common
            ),
            BuddyApproveExecutionOperator(task_id="approve_no_variables_for_a_prompt", pipeline_id=3, execution_id=asking["id"], **common),
            BuddyApproveExecutionOperator(
                task_id="approve_variables_text", pipeline_id=3, execution_id=asking["id"], variables="{{ params.text }}", **common
            ),
            BuddyClearPipelineCacheOperator(task_id="clear_unknown_pipeline", pipeline_id="no-such-pipeline", **common),
            BuddyExecutionSensor(task_id="sense_execution_negative", pipeline_id=1, execution_id="{{ params.neg }}", **common),
            BuddyExecutionSensor(task_id="sense_pipeline_text", pipeline_id="{{ params.text }}", execution_id=1, **common),
        ]
        # approval answers that render to text: refused before the run starts, the retry is sent or the execution read
        answers: dict[str, Any] = {"approval_variables": "{{ params.text }}", "on_approval": "approve", **common}
        tasks += [
            BuddyRunPipelineOperator(task_id="run_answers_text", pipeline_id=4, **answers),
            BuddyRetryExecutionOperator(task_id="retry_answers_text", pipeline_id=4, execution_id=untouched["id"], **answers),
            BuddyExecutionSensor(task_id="sense_answers_text", pipeline_id=4, execution_id=untouched["id"], deferrable=True, **answers),
            BuddyExecutionSensor(task_id="poke_answers_text", pipeline_id=4, execution_id=untouched["id"], deferrable=False, **answers),
        ]
    dag_run = run_dag(dag)
    assert set(states(dag_run).values()) == {"failed"}
    text = logs.text
    for expected in (
        "pipeline_id must be a non-empty string",
        "pipeline_id 'no-such-pipeline': no pipeline in project 'web'",
        "at most one of branch, tag, pull_request",
        "variables must be a dict or a list of {key, value, encrypted}, got a string",
        "execution_id must be a positive whole number, got '0'",
        "execution_id must be a positive whole number, got 'abc'",
        "execution_id must be a positive whole number, got '-2'",
        "pipeline_id 'abc': no pipeline in project 'web'",
        "variables: Buddy execution",  # names the parameter and what the execution waits for
        "approval_variables: variables must be a dict or a list",
    ):
        assert expected in text, expected
    assert text.count("approval_variables: variables must be a dict or a list") >= 4
    assert emulator.requests_to("GET", "/pipelines/4/") == []
    # reads only (the execution being approved, the pipeline lists): nothing was started, approved, cancelled or retried
    assert {r.method for r in emulator.requests} <= {"GET"}


@pytest.mark.usefixtures("airflow_db")
def test_plain_http_to_another_host_is_refused_before_sending(
    emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    # the emulator's port on a name that is not loopback: were the token sent, it would have to go somewhere
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUDDY_REMOTE",
        json.dumps({"conn_type": "buddy", "host": f"http://buddy.example.com:{emulator.port}", "login": WORKSPACE, "password": TOKEN}),
    )
    with DAG(dag_id=f"plain_http_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        BuddyRunPipelineOperator(task_id="run", project_name="web", pipeline_id=1, buddy_conn_id="buddy_remote")
        BuddyExecutionSensor(
            task_id="sense", project_name="web", pipeline_id=1, execution_id=1, buddy_conn_id="buddy_remote", deferrable=True
        )
        BuddyCancelExecutionOperator(task_id="cancel", project_name="web", pipeline_id=1, execution_id=1, buddy_conn_id="buddy_remote")

        @task(task_id="hook")
        def through_the_hook() -> None:
            BuddyHook("buddy_remote").get_workspace()

        through_the_hook()
    dag_run = run_dag(dag)
    assert states(dag_run) == {"run": "failed", "sense": "failed", "cancel": "failed", "hook": "failed"}
    assert logs.text.count("refusing to send the token over plain http:// to 'buddy.example.com'") >= 4
    assert "BuddyConfigurationError" in logs.text and TOKEN not in logs.text
    assert emulator.requests == []


# ---- property tests: whatever the server sends ---------------------------------------------------------
EXAMPLES = 2000 if SOAK else 150
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)
STATUSES = [
    "SUCCESSFUL",
    "FAILED",
    "TERMINATED",
    "SKIPPED",
    "INPROGRESS",
    "ENQUEUED",
    "WAITING_FOR_APPLY",
    "WAITING_FOR_VARIABLES",
    "WAITING_FOR_SETTABLE_VARIABLES",
    "WAITING_FOR_VT_SESSION",
    "NOT_EXECUTED",
    "successful",
    "BRAND_NEW",
    "",
]
statuses = st.sampled_from(STATUSES) | json_values
variables_like = st.fixed_dictionaries(
    {"key": st.text(max_size=5) | json_values}, optional={"value": json_values, "encrypted": st.booleans() | json_values}
)
actions_like = st.fixed_dictionaries(
    {},
    optional={
        "action_execution_id": st.text(max_size=6) | json_values,
        "status": statuses,
        "error_message": json_values,
        "action": st.fixed_dictionaries({}, optional={"name": json_values, "type": json_values}),
        "passed_variables": st.lists(variables_like, max_size=2) | json_values,
        "outputted_variables": st.lists(variables_like, max_size=2),
        "approval_date": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday"]) | json_values,
        "start_date": json_values,
    },
)
executions_like = st.fixed_dictionaries(
    {"id": st.integers(min_value=-2, max_value=10**12) | json_values},
    optional={
        "status": statuses,
        "html_url": json_values,
        "comment": json_values,
        "triggeredOn": json_values,
        "action_executions": st.lists(actions_like, max_size=3) | json_values,
        "branch": json_values,
        "start_date": st.sampled_from(["2026-01-01T00:00:00.000Z", "not a date", "2026-13-45"]) | json_values,
    },
)
bodies = (
    executions_like
    | json_values
    | st.fixed_dictionaries({"executions": st.lists(executions_like, max_size=3) | json_values}, optional={"total_page_count": json_values})
    | st.fixed_dictionaries({"pipelines": st.lists(json_values, max_size=3)})
    | st.fixed_dictionaries({"logs": json_values, "total_element_count": json_values})
    | st.fixed_dictionaries({"errors": json_values})
)


def _model_checks(data: Any) -> None:
    for model in (Execution, ActionExecution, Pipeline, Workspace, ActionLogs):
        try:
            parsed = model.model_validate(data)
        except ValueError:  # pydantic's ValidationError: the typed error the HTTP core turns into BuddyResponseError
            continue
        repr(parsed)
        if isinstance(parsed, Execution):
            for policy in ApprovalPolicy:
                for flags in itertools.product((False, True), repeat=2):
                    decision = decide(
                        parsed, policy, has_approval_variables=flags[0], skipped_is_success=flags[1], approved_action_ids=frozenset({"a1"})
                    )
                    assert isinstance(decision.step, Step)
                    json.dumps(event_payload(parsed, decision))
            json.dumps(summary_from_event(event_payload(parsed, decide(parsed, ApprovalPolicy.WAIT))))
            _ = (parsed.is_finished, parsed.failed_action, parsed.waiting_action, parsed.waits_for)


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(bodies)
def test_any_json_is_a_model_or_a_validation_error_and_decisions_never_crash(data: Any) -> None:
    _model_checks(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_any_rate_limit_header_is_read_or_ignored(retry_after: str, reset: str) -> None:
    for headers in ({"retry-after": retry_after}, {"x-rate-limit-reset": reset}, {"retry-after": retry_after, "x-rate-limit-reset": reset}):
        value = retry_after_seconds(headers, now=1_795_000_000.0)
        assert value is None or (isinstance(value, float) and not math.isnan(value) and value >= 0)


class Served:
    """One emulator, one sync hook and one async hook on one event loop, for every example."""

    def __init__(self, emulator: BuddyEmulator) -> None:
        self.emulator = emulator
        self.loop = asyncio.new_event_loop()
        self.hook = BuddyHook(settings=fast_settings(emulator.url, max_retries=0))
        self.ahook = BuddyHook(settings=fast_settings(emulator.url, max_retries=0))

    def close(self) -> None:
        self.hook.close()
        self.loop.run_until_complete(self.ahook.aclose())
        self.loop.close()


@pytest.fixture(scope="module")
def served() -> Any:
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=20.0) as emu:
        emu.add_pipeline("web", 1, "build", actions=[{"id": 10, "name": "Build", "type": "BUILD", "duration": 1}])
        state = Served(emu)
        yield state
        state.close()


ENDPOINTS: dict[str, Any] = {
    "get_execution": (lambda h: h.get_execution("web", 1, 1), lambda h: h.aget_execution("web", 1, 1), Execution),
    "list_executions": (lambda h: h.list_executions("web", 1), lambda h: h.alist_executions("web", 1), list),
    "run_pipeline": (lambda h: h.run_pipeline("web", 1), lambda h: h.arun_pipeline("web", 1), Execution),
    "cancel_execution": (lambda h: h.cancel_execution("web", 1, 1), lambda h: h.acancel_execution("web", 1, 1), Execution),
    "approve_execution": (
        lambda h: h.approve_execution("web", 1, 1, {"N": "x"}, "a1"),
        lambda h: h.aapprove_execution("web", 1, 1, {"N": "x"}, "a1"),
        Execution,
    ),
    "get_action_execution": (
        lambda h: h.get_action_execution("web", 1, 1, "a1"),
        lambda h: h.aget_action_execution("web", 1, 1, "a1"),
        ActionExecution,
    ),
    "get_action_execution_logs": (
        lambda h: h.get_action_execution_logs("web", 1, 1, "a1", tail=5),
        lambda h: h.aget_action_execution_logs("web", 1, 1, "a1", tail=5),
        list,
    ),
    "find_pipeline": (lambda h: h.find_pipeline("web", "build"), lambda h: h.afind_pipeline("web", "build"), Pipeline),
    "get_workspace": (lambda h: h.get_workspace(), lambda h: h.aget_workspace(), Workspace),
    "clear_pipeline_cache": (lambda h: h.clear_pipeline_cache("web", 1), lambda h: h.aclear_pipeline_cache("web", 1), Pipeline),
}


@settings(max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(sorted(ENDPOINTS)),
    status=st.sampled_from([200, 200, 200, 201, 302, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
    body=bodies | st.text(max_size=30),
    asynchronous=st.booleans(),
)
def test_any_answer_over_http_is_a_model_or_a_typed_error(
    served: Served, endpoint: str, status: int, body: Any, asynchronous: bool
) -> None:
    served.emulator.clear_faults()
    served.emulator.add_fault(Fault(kind="status", status=status, body=body, headers={"Retry-After": "0"}))
    call, acall, expected = ENDPOINTS[endpoint]
    try:
        result = served.loop.run_until_complete(acall(served.ahook)) if asynchronous else call(served.hook)
    except BuddyError as exc:
        assert str(exc) and exc.kind is not None
        return
    assert isinstance(result, expected)
