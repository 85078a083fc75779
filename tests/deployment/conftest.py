"""One real deployment for the whole e2e session: PostgreSQL, the Buddy emulator (standalone, ``demo.json``) and
Airflow's api-server, scheduler, dag-processor and triggerer, each a separate process started here.

Every test in this folder is marked ``e2e`` (``make unit`` leaves them out, ``make e2e`` runs only them). The summary
table of every scenario is printed at the end of the session and written, with the details, to
``tmp/test-output/e2e/results.json``; the components' logs are in ``tmp/test-output/e2e/logs/``.

Knobs (environment): ``E2E_EMULATOR_SPEED`` (emulated Buddy seconds per real second, default 1: the demo's steps
take the seconds demo.json gives them), ``E2E_DATABASE=sqlite`` (SQLite in the home instead of
PostgreSQL; see the notes in harness.py for what that does under load), ``E2E_KEEP=1`` (leave the output of an
earlier session in place; by default each session starts from an empty output folder).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.harness import (
    REPO,
    AirflowDeployment,
    EmulatorProcess,
    HitlAnswerer,
    PostgresProcess,
    ProcessBook,
)
from tests.deployment.scenarios import ScenarioResult, format_table

OUTPUT = REPO / "tmp" / "test-output" / "e2e"
EXAMPLE_DAGS = ("buddy_release", "buddy_pass_arguments", "buddy_cancel_on_timeout", "gorules_release", "buddy_wait_for_execution")

RESULTS: list[ScenarioResult] = []
TIMINGS: dict[str, float] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark this folder's tests ``e2e``; the browser tests go last (their DAG runs, started with the deployment, are
    at their gate by then)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: Path(str(item.fspath)).name == "test_browser.py")


@dataclass
class E2E:
    """The running deployment and what the tests share."""

    out: Path
    book: ProcessBook
    emulator: EmulatorProcess
    deployment: AirflowDeployment
    answerer: HitlAnswerer
    postgres: PostgresProcess | None = None
    browser_runs: list[str] = field(default_factory=list)  # buddy_release runs whose gate the browser test answers
    results: list[ScenarioResult] = field(default_factory=list)

    def record(self, result: ScenarioResult) -> None:
        RESULTS.append(result)
        write_results()


def write_results() -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"timings": TIMINGS, "table": format_table(RESULTS), "scenarios": [r.to_dict() for r in RESULTS]}
    (OUTPUT / "results.json").write_text(json.dumps(data, indent=1, default=str))


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    started = time.monotonic()
    if OUTPUT.exists() and os.environ.get("E2E_KEEP") != "1":
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    book = ProcessBook(OUTPUT)
    book.start_reaper()
    postgres: PostgresProcess | None = None
    emulator: EmulatorProcess | None = None
    deployment: AirflowDeployment | None = None
    answerer: HitlAnswerer | None = None
    try:
        if os.environ.get("E2E_DATABASE", "postgres") != "sqlite":
            postgres = PostgresProcess(book, OUTPUT / "logs")  # assigned first: a failed start still removes its data folder
            postgres.start()
        scenario = REPO / "airflow_provider_buddy" / "testing" / "scenarios" / "demo.json"
        emulator = EmulatorProcess(scenario, OUTPUT / "logs", book=book, speed=float(os.environ.get("E2E_EMULATOR_SPEED", "1")))
        emulator.start()
        connections = {  # one emulator serves both (demo.json has a GoRules project): one token
            "buddy_default": {"conn_type": "buddy", "host": emulator.url, "login": emulator.workspace, "password": emulator.token},
            "gorules_default": {"conn_type": "gorules", "host": emulator.url, "password": emulator.token},
        }
        dags = [REPO / "example_dags" / f"{name}.py" for name in EXAMPLE_DAGS]
        deployment = AirflowDeployment(OUTPUT, dags, connections, book=book, database_url=postgres.url if postgres else None)
        deployment.start(EXAMPLE_DAGS)
        for dag_id in EXAMPLE_DAGS:
            deployment.rest.unpause(dag_id)
        # two runs for the browser test, started now so they wait at their gate by the time it runs (two: one that
        # Airflow's defer race fails before its gate does not fail the browser test)
        browser_runs = [
            deployment.rest.trigger("buddy_release", f"browser_{i}", {"branch": "main", "comment": f"browser {i}"}) for i in range(2)
        ]
        answerer = HitlAnswerer(deployment.new_api()).start()
        TIMINGS.update({f"deployment {k}": round(v, 1) for k, v in deployment.timings.items()})
        TIMINGS["deployment start-up (all)"] = round(time.monotonic() - started, 1)
        yield E2E(OUTPUT, book, emulator, deployment, answerer, postgres, browser_runs=browser_runs)
    finally:
        stopping = time.monotonic()
        if answerer is not None:
            answerer.stop()
        if deployment is not None:
            deployment.stop()
        if emulator is not None:
            emulator.stop()
        if postgres is not None:
            postgres.stop()
        left = book.close()
        TIMINGS["shutdown"] = round(time.monotonic() - stopping, 1)
        TIMINGS["stray processes killed by the final sweep"] = len(left)
        TIMINGS["session (all)"] = round(time.monotonic() - started, 1)
        write_results()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS and not TIMINGS:
        return
    terminalreporter.section("real Airflow deployment: scenarios")
    terminalreporter.write_line(format_table(RESULTS))
    for name, value in TIMINGS.items():
        terminalreporter.write_line(f"{name}: {value}")
    terminalreporter.write_line(f"details: {OUTPUT / 'results.json'}; logs: {OUTPUT / 'logs'}")
