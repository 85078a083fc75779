"""
Worker seconds a deferrable ``BuddyExecutionSensor`` holds for a long wait, in real Airflow (``dag.test``).

``python benchmarks/_worker_hold.py --wait 600 --speed 40 --out RESULT.json``

The project's emulator runs on 127.0.0.1 with one action lasting ``--wait`` emulated seconds (``--speed``
emulated seconds pass per real second). A DAG with one deferrable sensor waits on it; the sensor's
``execute()`` (until it raises ``TaskDeferred``) and ``execute_complete()`` are timed: that is what a
worker slot is held for. The wait itself runs in the trigger (inline in ``dag.test``, in the
triggerer in production) and holds no worker.

Run with a throwaway ``AIRFLOW_HOME`` (the parent sets one); the metadata DB is created there.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="buddy-bench-worker-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

TOKEN = "tok-bench"
WORKSPACE = "acme"
TIMES: dict[str, list[float]] = {"execute": [], "complete": [], "undeferred": []}


def sync_dag(dag: Any) -> None:
    """Serialize an in-memory DAG into the metadata DB, as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False, bundle_path=Path(dag.fileloc).parent, bundle_name="dags-folder")
    dag.relative_fileloc = Path(dag.fileloc).name
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wait", type=float, default=600.0, help="emulated seconds the execution runs")
    parser.add_argument("--speed", type=float, default=40.0, help="emulated seconds per real second")
    parser.add_argument("--poke-interval", type=float, default=1.0, help="the sensor's poll interval, real seconds")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from airflow.sdk import DAG, task
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.utils import db

    from airflow_provider_buddy.sensors.buddy import BuddyExecutionSensor
    from airflow_provider_buddy.testing import BuddyEmulator

    class TimedSensor(BuddyExecutionSensor):
        """The real sensor, with the worker-side calls timed."""

        def execute(self, context: Any) -> Any:
            start = time.perf_counter()
            try:
                result = super().execute(context)
            except TaskDeferred:
                TIMES["execute"].append(time.perf_counter() - start)
                raise
            TIMES["undeferred"].append(time.perf_counter() - start)
            return result

        def execute_complete(self, context: Any, event: dict[str, Any], **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return super().execute_complete(context, event, **kwargs)
            finally:
                TIMES["complete"].append(time.perf_counter() - start)

    db.resetdb()
    with BuddyEmulator(workspace=WORKSPACE, token=TOKEN, speed=args.speed) as emulator:
        os.environ["AIRFLOW_CONN_BUDDY_DEFAULT"] = json.dumps(
            {"conn_type": "buddy", "host": emulator.url, "login": WORKSPACE, "password": TOKEN}
        )
        actions = [{"id": 1, "name": "Long CI run", "type": "BUILD", "duration": args.wait, "log": ["running", "done"]}]
        emulator.add_pipeline(project="web", pipeline_id=1, identifier="ci", name="CI", actions=actions)
        with DAG(dag_id="bench_worker_hold", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:

            @task(task_id="start")
            def start() -> int:
                # Something else starts the run (as in a release DAG); the sensor then waits on it.
                return int(emulator.start_execution("web", 1)["id"])

            start() >> TimedSensor(
                task_id="wait",
                project_name="web",
                pipeline_id=1,
                execution_id="{{ ti.xcom_pull(task_ids='start') }}",
                poke_interval=args.poke_interval,
                timeout=args.wait * 10,
                deferrable=True,
            )
        sync_dag(dag)
        start = time.perf_counter()
        dag_run = dag.test()
        total = time.perf_counter() - start
        state = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}["wait"]
    if TIMES["undeferred"] or not TIMES["execute"]:
        raise SystemExit(f"the sensor did not defer (times: {TIMES}); make --wait / --speed longer")
    execute_s = sum(TIMES["execute"])
    complete_s = sum(TIMES["complete"])
    args.out.write_text(
        json.dumps(
            {
                "wait_emulated_s": args.wait,
                "wait_real_s": args.wait / args.speed,
                "execute_s": execute_s,
                "complete_s": complete_s,
                "worker_s": execute_s + complete_s,
                "deferrals": len(TIMES["execute"]),
                "finished_without_deferring": len(TIMES["undeferred"]),
                "resumes": len(TIMES["complete"]),
                "dag_test_s": total,
                "task_state": state,
            }
        )
    )


if __name__ == "__main__":
    main()
