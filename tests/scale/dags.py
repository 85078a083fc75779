"""What the scale-out scenario runs: the emulator's pipelines and the DAG files, generated into the deployment.

Pipelines (project ``web``; emulated seconds; ``LONG`` outlasts the kill and the takeover, then the test moves the
emulator's clock on):

- 10-19 ``ci-0`` ... ``ci-9``: BUILD ``LONG + 3k`` (their ends spread over 30 s); the sensors of ``scale_ci_watch``
  wait on runs of these that the test starts "in Buddy";
- 20 ``ci-red``: BUILD ``LONG``, then FAILED; the sensors of ``scale_red``;
- 30 ``build``: BUILD ``LONG``; the run operators of ``scale_release``;
- 31 ``gated``: BUILD 10, WAIT_FOR_APPLY, BUILD ``LONG``, WAIT_FOR_APPLY, BUILD 3; ``scale_release.deploy``
  (``on_approval="approve"``: approves both gates);
- 32 ``doomed``: BUILD ``3 x LONG``; ``scale_cancel.deploy``: a person marks it failed, the trigger cancels it;
- 33 ``gate-early``: BUILD ``GATE_AT``, WAIT_FOR_APPLY, BUILD 3; ``scale_gate.deploy`` (``on_approval="succeed"``: the
  task ends when the run reaches the gate, the run waits for a person -- the test approves it in Buddy later).

DAGs (all deferrable, every wait in the triggerer; sensors start there directly, ``start_from_trigger``):

- ``scale_ci_watch``: ``SENSORS`` sensors on two executions from the run's conf, half on each: the run's own CI run,
  and one it shares with the run ``ci_runs / 2`` places later (so ten sensors of two DAG runs far apart in Airflow's
  order, often on different triggerers, wait on one execution) -- expected success;
- ``scale_release``: ``BUILDS`` run operators on ``build`` and one on ``gated`` approving both gates -- success;
- ``scale_cancel``: one run operator on ``doomed``, marked failed mid-wait by a person -- failed, Buddy run cancelled;
- ``scale_red``: two sensors on one ``ci-red`` execution that fails -- failed (the failure resumes on a worker);
- ``scale_gate``: one run operator on ``gate-early`` ending at the gate -- success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LONG = 3600
CI_PIPELINES = list(range(10, 20))
RED_PIPELINE = 20
BUILD_PIPELINE = 30
GATED_PIPELINE = 31
DOOMED_PIPELINE = 32
GATE_PIPELINE = 33
GATE_AT = 600
GATES = 2  # approvals the gated pipeline asks for
DAG_PREFIX = "scale_"


@dataclass(frozen=True)
class Size:
    """How big one scenario is."""

    ci_runs: int
    release_runs: int
    cancel_runs: int
    red_runs: int
    gate_runs: int = 0
    sensors_per_run: int = 10
    executions_per_run: int = 2
    builds_per_release: int = 4
    interval: float = 5.0

    @property
    def shared_ci(self) -> int:
        """CI executions each shared by two ``scale_ci_watch`` runs (run i and run i + shared_ci)."""
        return (self.ci_runs + 1) // 2

    @property
    def waits(self) -> int:
        """Deferred waits in all (each one a trigger)."""
        return self.ci_runs * self.sensors_per_run + self.worker_tasks + self.red_runs * 2

    @property
    def executions(self) -> int:
        """Buddy executions waited on."""
        return self.ci_runs + self.shared_ci + self.worker_tasks + self.red_runs

    @property
    def worker_tasks(self) -> int:
        """Tasks that need a Celery worker (run operators start their run there; sensors start in the triggerer)."""
        return self.release_runs * (self.builds_per_release + 1) + self.cancel_runs + self.gate_runs

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "waits": self.waits, "executions": self.executions, "worker_tasks": self.worker_tasks}


FROZEN_SIZES = {  # the SIGSTOP scenario: fewer waits, the same shapes
    "reduced": Size(ci_runs=6, release_runs=2, cancel_runs=1, red_runs=0, gate_runs=4),  # 75 waits
    "full": Size(ci_runs=30, release_runs=10, cancel_runs=4, red_runs=2, gate_runs=12),  # 370 waits
}

SIZES = {
    "reduced": Size(ci_runs=28, release_runs=4, cancel_runs=2, red_runs=2),  # 306 waits, 66 executions, 22 worker tasks
    "full": Size(ci_runs=100, release_runs=30, cancel_runs=10, red_runs=5),  # 1170 waits, 315 executions
}


def scenario(workspace: str = "acme", token: str = "scale-token") -> dict[str, Any]:
    """The emulator's scenario (one project, the pipelines above)."""

    def build(action_id: int, name: str, duration: float) -> dict[str, Any]:
        return {"id": action_id, "name": name, "type": "BUILD", "duration": duration, "log": [f"{name}: working", f"{name}: done"]}

    pipelines: list[dict[str, Any]] = []
    for k, pipeline in enumerate(CI_PIPELINES):
        pipelines.append(
            {"id": pipeline, "identifier": f"ci-{k}", "name": f"CI {k}", "actions": [build(pipeline * 10, "Test", LONG + 3 * k)]}
        )
    pipelines.append(
        {
            "id": RED_PIPELINE,
            "identifier": "ci-red",
            "name": "CI (red)",
            "actions": [build(201, "Test", LONG)],
            "outcome": "FAILED",
            "error_message": "3 tests failed",
        }
    )
    pipelines.append({"id": BUILD_PIPELINE, "identifier": "build", "name": "Build", "actions": [build(301, "Build", LONG)]})
    pipelines.append(
        {
            "id": GATED_PIPELINE,
            "identifier": "gated",
            "name": "Deploy with two approvals",
            "actions": [
                build(311, "Package", 10),
                {"id": 312, "name": "Approve QA", "type": "WAIT_FOR_APPLY"},
                build(313, "Deploy to QA", LONG),
                {"id": 314, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
                build(315, "Deploy to production", 3),
            ],
            "wait_shown_on": "action",
        }
    )
    pipelines.append(
        {
            "id": GATE_PIPELINE,
            "identifier": "gate-early",
            "name": "Deploy, then wait for approval",
            "actions": [
                build(331, "Deploy to staging", GATE_AT),
                {"id": 332, "name": "Approve production", "type": "WAIT_FOR_APPLY"},
                build(333, "Deploy to production", 3),
            ],
            "wait_shown_on": "action",
        }
    )
    pipelines.append(
        {"id": DOOMED_PIPELINE, "identifier": "doomed", "name": "Endless migration", "actions": [build(321, "Migrate", 3 * LONG)]}
    )
    return {"workspace": workspace, "token": token, "projects": [{"name": "web", "display_name": "Web", "pipelines": pipelines}]}


HEADER = '''"""Generated by tests/scale/dags.py for the scale-out scenario (not an example: see example_dags/)."""

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_buddy.operators.buddy import BuddyRunPipelineOperator
from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor

INTERVAL = {interval!r}
RETRIES = 2  # run operators: a try lost to the machine (an api-server timing out under load) re-attaches to its run
ARGS = dict(schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs={max_runs}, tags=["scale"])
'''

CI_WATCH = """
with DAG("scale_ci_watch", **ARGS):
    for i in range({sensors}):
        k = i % {executions}
        BuddyExecutionSensor(
            task_id=f"watch_{{i}}",
            project_name="web",
            pipeline_id="{{{{ dag_run.conf['executions'][%d][0] }}}}" % k,
            execution_id="{{{{ dag_run.conf['executions'][%d][1] }}}}" % k,
            poke_interval=INTERVAL,
            deferrable=True,
        )
"""

RED = """
with DAG("scale_red", **ARGS):
    for i in range(2):
        BuddyExecutionSensor(
            task_id=f"watch_{{i}}",
            project_name="web",
            pipeline_id={red},
            execution_id="{{{{ dag_run.conf['execution'] }}}}",
            poke_interval=INTERVAL,
            deferrable=True,
        )
"""

RELEASE = """
with DAG("scale_release", **ARGS):
    for i in range({builds}):
        BuddyRunPipelineOperator(
            task_id=f"build_{{i}}",
            project_name="web",
            pipeline_id={build},
            comment="scale build {{{{ run_id }}}}",
            poll_interval=INTERVAL,
            deferrable=True,
            retries=RETRIES,
        )
    BuddyRunPipelineOperator(
        task_id="deploy",
        project_name="web",
        pipeline_id={gated},
        comment="scale deploy {{{{ run_id }}}}",
        on_approval="approve",
        poll_interval=INTERVAL,
        deferrable=True,
        retries=RETRIES,
    )
"""

CANCEL = """
with DAG("scale_cancel", **ARGS):
    BuddyRunPipelineOperator(
        task_id="deploy",
        project_name="web",
        pipeline_id={doomed},
        comment="scale doomed {{{{ run_id }}}}",
        poll_interval=INTERVAL,
        deferrable=True,
        retries=RETRIES,
        cancel_on_kill=True,
    )
"""

GATE = """
with DAG("scale_gate", **ARGS):
    BuddyRunPipelineOperator(
        task_id="deploy",
        project_name="web",
        pipeline_id={gate},
        comment="scale gate {{{{ run_id }}}}",
        on_approval="succeed",
        poll_interval=INTERVAL,
        deferrable=True,
        retries=RETRIES,
    )
"""

DAG_IDS = ("scale_ci_watch", "scale_release", "scale_cancel", "scale_red", "scale_gate")


def write_dags(folder: Path, size: Size) -> list[Path]:
    """The DAG files, in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    header = HEADER.format(interval=size.interval, max_runs=max(64, size.ci_runs + 16))
    bodies = {
        "scale_ci_watch.py": CI_WATCH.format(sensors=size.sensors_per_run, executions=size.executions_per_run),
        "scale_release.py": RELEASE.format(builds=size.builds_per_release, build=BUILD_PIPELINE, gated=GATED_PIPELINE),
        "scale_cancel.py": CANCEL.format(doomed=DOOMED_PIPELINE),
        "scale_red.py": RED.format(red=RED_PIPELINE),
        "scale_gate.py": GATE.format(gate=GATE_PIPELINE),
    }
    paths = []
    for name, body in bodies.items():
        path = folder / name
        path.write_text(header + body)
        paths.append(path)
    return paths


def write_scenario(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scenario(), indent=1))
    return path
