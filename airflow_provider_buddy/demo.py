"""``make demo``: the example release DAG, end to end, in real Airflow, against the local Buddy emulator.

It starts the emulator (``demo.json`` scenario), migrates a throwaway Airflow metadata database,
starts ``airflow api-server`` and runs ``airflow dags test buddy_release``. While the DAG runs it prints
where each task stands and what Buddy sees. When the release reaches its approval gate, the request
sits in Airflow's human-in-the-loop machinery ("Required actions"); the demo answers it the way a
reviewer's browser or a script would: through Airflow's REST API (``PATCH .../hitlDetails``). With
``--interactive`` (or ``BUDDY_DEMO_INTERACTIVE=1``) it leaves the answer to you in the Airflow UI.
Everything is shut down at the end; logs stay in ``.demo/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

DAG_ID = "buddy_release"
GATE_TASK = "approve"
TOKEN = "demo-token"
WORKSPACE = "acme"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Clock:
    """Seconds since the demo started, for the printed timeline."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        """Print one timeline line."""
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)


@contextmanager
def _process(args: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _wait_until(check: Any, what: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"demo: {what} exited early (code {process.returncode}); see .demo/ logs")
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"demo: {what} not ready after {timeout:.0f}s; see .demo/ logs")


class Demo:
    """
    One demo run.

    :param root: the repository (holds ``example_dags/``).
    :param interactive: leave the approval to a person in the Airflow UI.
    :param speed: emulated Buddy seconds per real second.
    """

    def __init__(self, root: Path, *, interactive: bool, speed: float) -> None:
        self.root = root
        self.work = root / ".demo"
        self.interactive = interactive
        self.speed = speed
        self.clock = Clock()
        self.emulator_port = _free_port()
        self.api_port = _free_port()
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.states: dict[str, str] = {}
        self.buddy: dict[str, str] = {}
        self.answered = False

    def env(self) -> dict[str, str]:
        """The environment every Airflow process of the demo shares."""
        home = self.work / "airflow"
        connection = {"conn_type": "buddy", "host": self.emulator_url, "login": WORKSPACE, "password": TOKEN}
        return {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.root / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW_CONN_BUDDY_DEFAULT": json.dumps(connection),
            "PYTHONUNBUFFERED": "1",
        }

    def run(self) -> int:
        """Run the whole demo; returns the process exit code."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        env = self.env()
        bin_dir = Path(sys.executable).parent
        airflow = str(bin_dir / "airflow")
        scenario = Path(__file__).parent / "testing" / "scenarios" / "demo.json"
        say = self.clock.say
        say(f"Starting the Buddy emulator at {self.emulator_url} (scenario demo.json, {self.speed:g}x speed)")
        emulator_cmd = [sys.executable, "-m", "airflow_provider_buddy.testing.emulator", "--port", str(self.emulator_port)]
        emulator_cmd += ["--scenario", str(scenario), "--speed", str(self.speed)]
        with _process(emulator_cmd, self.work / "emulator.log", env) as emulator:
            _wait_until(lambda: httpx.get(f"{self.emulator_url}/__emulator__/", timeout=2).status_code == 200, "the emulator", 30, emulator)
            say("Creating a fresh Airflow metadata database (airflow db migrate)")
            migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, check=False)
            (self.work / "db-migrate.log").write_bytes(migrate.stdout + migrate.stderr)
            if migrate.returncode != 0:
                raise SystemExit("demo: airflow db migrate failed; see .demo/db-migrate.log")
            say(f"Starting airflow api-server at {self.api_url} (REST API + UI)")
            with _process([airflow, "api-server", "--port", str(self.api_port)], self.work / "api-server.log", env) as api:
                _wait_until(
                    lambda: httpx.get(f"{self.api_url}/api/v2/monitor/health", timeout=2).status_code == 200, "the api-server", 120, api
                )
                conf = json.dumps({"branch": "main", "comment": "Demo release"})
                say(f"Running `airflow dags test {DAG_ID}` with conf {conf}")
                with _process([airflow, "dags", "test", DAG_ID, "-c", conf], self.work / "dags-test.log", env) as dag_test:
                    self.watch(dag_test)
                    code = dag_test.wait()
                self.report()
        say("Everything shut down. Logs: .demo/ (emulator.log, api-server.log, dags-test.log)")
        success = code == 0 and self.states.get("production") == "success"
        print("\nDEMO PASSED" if success else "\nDEMO FAILED", flush=True)
        return 0 if success else 1

    # ---- watching and answering ----------------------------------------------------------------
    def watch(self, dag_test: subprocess.Popen[bytes]) -> None:
        """Print task and Buddy changes until ``airflow dags test`` ends; answer the gate."""
        with httpx.Client(base_url=self.api_url, timeout=10) as api, httpx.Client(base_url=self.emulator_url, timeout=5) as buddy:
            while dag_test.poll() is None:
                self._poll_tasks(api)
                self._poll_buddy(buddy)
                if self.states.get(GATE_TASK) == "awaiting_input" and not self.answered:
                    self._answer(api)
                time.sleep(0.5)
            self._poll_tasks(api)
            self._poll_buddy(buddy)

    def _run_id(self, api: httpx.Client) -> str | None:
        response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"order_by": "-run_after", "limit": 1})
        runs = response.json().get("dag_runs", []) if response.status_code == 200 else []
        return str(runs[0]["dag_run_id"]) if runs else None

    def _poll_tasks(self, api: httpx.Client) -> None:
        try:
            run_id = self._run_id(api)
            if run_id is None:
                return
            response = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        for ti in sorted(response.json().get("task_instances", []), key=lambda t: t.get("start_date") or "~"):
            state = ti.get("state") or "none"
            task_id = ti["task_id"]
            before = self.states.get(task_id, "none")
            self.states[task_id] = state
            if before != state:
                self.clock.say(f"Airflow  {task_id:<12} {before} -> {state}")

    def _poll_buddy(self, buddy: httpx.Client) -> None:
        for pipeline_id, name in ((1, "build"), (2, "deploy-staging")):
            try:
                executions = buddy.get(f"/__emulator__/executions/web/{pipeline_id}").json()
            except (httpx.HTTPError, ValueError):
                return
            for execution in executions if isinstance(executions, list) else []:
                waiting = [
                    a["action"]["name"] for a in execution.get("action_executions", []) if str(a.get("status", "")).startswith("WAITING")
                ]
                shown = execution["status"] + (f" (waiting at {waiting[0]!r})" if waiting else "")
                key = f"{name} #{execution['id']}"
                if self.buddy.get(key) != shown:
                    self.buddy[key] = shown
                    self.clock.say(f"Buddy    {key:<20} {shown}")

    def _answer(self, api: httpx.Client) -> None:
        run_id = self._run_id(api)
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{GATE_TASK}/-1/hitlDetails"
        detail = api.get(path).json()
        self.clock.say(f"Airflow  approval requested: {detail.get('subject')}")
        for line in str(detail.get("body") or "").splitlines():
            if line.strip():
                print(f"{'':10}| {line}", flush=True)
        if self.interactive:
            self.clock.say(f"Answer it in the Airflow UI: {self.api_url}/ -> Browse -> Required actions (waiting for you)")
            self.answered = True
            return
        response = api.patch(path, json={"chosen_options": ["Approve"], "params_input": {}})
        self.answered = response.status_code == 200
        self.clock.say(f"Reviewer answered 'Approve' through Airflow's REST API (HTTP {response.status_code})")

    def report(self) -> None:
        """The final state of every task, and what Buddy received."""
        print("\nFinal task states:", flush=True)
        for task_id in ("clear_cache", "build", "deploy_vars", "staging", "approve", "production"):
            print(f"  {task_id:<12} {self.states.get(task_id, 'none')}", flush=True)
        try:
            requests = httpx.get(f"{self.emulator_url}/__emulator__/requests", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return
        writes = [r for r in requests if r.get("method") in ("POST", "PATCH")]
        print("\nWhat Buddy received (writes):", flush=True)
        for request in writes:
            body = request.get("json") or {}
            what = body.get("operation") or ("clear_cache" if body.get("clear_cache") else "run")
            print(f"  {request['method']:<5} {request['path']}  -> {what} (HTTP {request.get('status')})", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--interactive",
        action="store_true",
        default=os.environ.get("BUDDY_DEMO_INTERACTIVE") == "1",
        help="answer the approval yourself in the Airflow UI",
    )
    parser.add_argument("--speed", type=float, default=4.0, help="emulated Buddy seconds per real second (default 4)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (holds example_dags/)")
    args = parser.parse_args(argv)
    if not (args.root / "example_dags" / f"{DAG_ID}.py").exists():
        parser.error(f"no example_dags/{DAG_ID}.py under {args.root}; run from the repository root or pass --root")
    return Demo(args.root.resolve(), interactive=args.interactive, speed=args.speed).run()


if __name__ == "__main__":
    sys.exit(main())
