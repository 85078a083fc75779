"""One production-shaped deployment for the scale-out tests (``make scale``; ``make test`` runs the reduced size).

PostgreSQL, Redis, the emulator standalone, the labelling proxy, and Airflow: api-server, scheduler, dag-processor,
``triggerer-1`` and ``triggerer-2``, one ``airflow celery worker`` (``CeleryExecutor``), each a process of its own,
tracked by the real-deployment suite's process book (sessions + marker + reaper; nothing is ever killed by name).

Knobs (environment): ``SCALE_SIZE`` (``reduced``, the default, or ``full``; see ``dags.SIZES``), ``SCALE_INTERVAL``
(seconds between polls, default 5), ``SCALE_HEALTH_THRESHOLD`` (Airflow's ``[triggerer]
triggerer_health_check_threshold``, default 20 s here; Airflow's default is 30), ``SCALE_WORKER_CONCURRENCY``
(default 4). Output: ``tmp/test-output/scale/`` (``results.json``, ``logs/``, ``airflow-home/``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.harness import REPO, AirflowDeployment, EmulatorProcess, PostgresProcess, ProcessBook, wait_until
from tests.scale.cluster import EmulatorClock, LabelProxy, MetaDb, ProcessMeter, RedisProcess
from tests.scale.dags import DAG_IDS, FROZEN_SIZES, SIZES, Size, write_dags, write_scenario

OUTPUT = REPO / "tmp" / "test-output" / "scale"
TRIGGERERS = ("triggerer-1", "triggerer-2")
RESULTS: list[dict[str, Any]] = []
TEXT: list[str] = []
TIMINGS: dict[str, Any] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.scale)


def scale_size(sizes: dict[str, Size] = SIZES) -> Size:
    name = os.environ.get("SCALE_SIZE", "reduced")
    if name not in sizes:
        raise pytest.UsageError(f"SCALE_SIZE must be one of {sorted(sizes)}, got {name!r}")
    size = sizes[name]
    if os.environ.get("SCALE_INTERVAL"):
        size = dataclasses.replace(size, interval=float(os.environ["SCALE_INTERVAL"]))
    return size


@dataclass
class Cluster:
    """The running deployment and its instruments."""

    out: Path
    size: Size
    book: ProcessBook
    postgres: PostgresProcess
    redis: RedisProcess
    emulator: EmulatorProcess
    proxy: LabelProxy
    deployment: AirflowDeployment
    db: MetaDb
    meter: ProcessMeter
    clock: EmulatorClock
    frozen_size: Size
    triggerer_jobs: dict[str, int] = field(default_factory=dict)  # component name -> its TriggererJob id
    settings: dict[str, Any] = field(default_factory=dict)

    def record(self, result: dict[str, Any], text: str) -> None:
        RESULTS.append(result)
        TEXT.append(text)
        write_results()

    def wait_triggerer_job(self, known: set[int], timeout: float = 180.0) -> int:
        """The id of a TriggererJob not in ``known`` that heartbeats (the triggerer just started)."""

        def new_job() -> int | None:
            fresh = [j["id"] for j in self.db.triggerer_jobs() if j["id"] not in known and j["end_date"] is None and j["latest_heartbeat"]]
            return fresh[-1] if fresh else None

        return int(wait_until(new_job, "a new triggerer's job", timeout, interval=0.5, alive=self.deployment.check_alive))


def write_results() -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    data = {"timings": TIMINGS, "text": TEXT, "scenarios": RESULTS}
    (OUTPUT / "results.json").write_text(json.dumps(data, indent=1, default=str))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    started = time.monotonic()
    size = scale_size()
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir(parents=True)
    logs = OUTPUT / "logs"
    book = ProcessBook(OUTPUT)
    book.start_reaper()
    postgres = redis = emulator = proxy = deployment = meter = None
    threshold = os.environ.get("SCALE_HEALTH_THRESHOLD", "20")
    concurrency = os.environ.get("SCALE_WORKER_CONCURRENCY", "4")
    try:
        postgres = PostgresProcess(book, logs)
        postgres.start()
        redis = RedisProcess(book, logs)
        redis.start()
        emulator = EmulatorProcess(write_scenario(OUTPUT / "scenario.json"), logs, book=book, speed=1.0)
        emulator.start()
        labels = [*TRIGGERERS, "celery-worker", "dag-processor"]
        proxy = LabelProxy(emulator.port, labels, book, logs).start()

        def buddy(url: str) -> dict[str, str]:
            return {"conn_type": "buddy", "host": url, "login": emulator.workspace, "password": emulator.token}

        settings = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": concurrency,
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": threshold,
            # a survivor must be able to hold every trigger of a dead peer (Airflow's default capacity is 1000)
            "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, size.waits + 100)),
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "512",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4096",
            "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "512",
            # a task's calls to the api-server wait up to 20 s (Airflow's default 5 s lost tries when the 2 cores were busy)
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "20",
        }
        own_env = {label: {"AIRFLOW_CONN_BUDDY_DEFAULT": json.dumps(buddy(proxy.url(label)))} for label in labels}
        dags = write_dags(OUTPUT / "generated-dags", size)
        deployment = AirflowDeployment(
            OUTPUT,
            dags,
            {"buddy_default": buddy(emulator.url)},
            book=book,
            database_url=postgres.url,
            max_poll=size.interval,
            extra_env=settings,
            triggerers=len(TRIGGERERS),
            extra_components={"celery-worker": ["{airflow}", "celery", "worker", "--concurrency", concurrency]},
            component_env=own_env,
        )
        watched = {name: deployment.components[name] for name in deployment.components}
        watched.update({"emulator": emulator.process, "postgres": postgres.process, "redis": redis.process, "label-proxy": proxy.process})
        meter = ProcessMeter(watched)
        cluster = Cluster(
            OUTPUT, size, book, postgres, redis, emulator, proxy, deployment, MetaDb(postgres.url), meter, EmulatorClock(emulator),
            frozen_size=scale_size(FROZEN_SIZES),
        )  # fmt: skip
        # the triggerers one after the other, so each one's job id is known
        deployment.start(DAG_IDS, later=TRIGGERERS[1:])
        first = cluster.wait_triggerer_job(set())
        deployment.start_component(TRIGGERERS[1])
        second = cluster.wait_triggerer_job({first})
        cluster.triggerer_jobs = {TRIGGERERS[0]: first, TRIGGERERS[1]: second}
        for dag_id in DAG_IDS:
            deployment.rest.unpause(dag_id)
        meter.start()
        cluster.settings = {**settings, "size": size.to_dict(), "triggerer jobs": cluster.triggerer_jobs}
        cluster.settings.pop("AIRFLOW__CELERY__BROKER_URL")
        cluster.settings.pop("AIRFLOW__CELERY__RESULT_BACKEND")
        TIMINGS.update({f"deployment {k}": round(v, 1) for k, v in deployment.timings.items()})
        TIMINGS["start-up (all)"] = round(time.monotonic() - started, 1)
        yield cluster
    finally:
        stopping = time.monotonic()
        if meter is not None:
            meter.stop()
        if deployment is not None:  # every component at once: one after the other took 45 s on the busy machine
            if deployment.api is not None:
                deployment.api.close()
            stoppers = [
                threading.Thread(target=component.stop, kwargs={"timeout": 20, "group_first": True})
                for component in deployment.components.values()
            ]
            for stopper in stoppers:
                stopper.start()
            for stopper in stoppers:
                stopper.join()
        for part in (proxy, emulator, redis, postgres):
            if part is not None:
                part.stop()
        TIMINGS["stray processes killed by the final sweep"] = len(book.close())
        TIMINGS["shutdown"] = round(time.monotonic() - stopping, 1)
        TIMINGS["session (all)"] = round(time.monotonic() - started, 1)
        write_results()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TEXT and not TIMINGS:
        return
    terminalreporter.section("scale-out on Airflow's distributed machinery")
    for text in TEXT:
        terminalreporter.write_line(text)
    for name, value in TIMINGS.items():
        terminalreporter.write_line(f"{name}: {value}")
    terminalreporter.write_line(f"details: {OUTPUT / 'results.json'}; logs: {OUTPUT / 'logs'}")
