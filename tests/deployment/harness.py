"""A real Airflow deployment and a standalone Buddy emulator, started and driven by a test.

- :class:`EmulatorProcess` -- ``python -m airflow_provider_buddy.testing.emulator`` on a free port, steered
  over its ``/__emulator__/`` control endpoints (requests log, executions, approve as a person, clock).
- :class:`AirflowDeployment` -- a throwaway ``AIRFLOW_HOME`` (LocalExecutor + SQLite), ``airflow db migrate``,
  then ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as separate processes, each in its
  own process group with its log in a file; health and DAG-parsing waits; restart / kill / start one
  component; everything stopped at the end, also when a test failed.
- :class:`AirflowApi` -- the public REST API as a script or the UI uses it (``POST /auth/token``, bearer).
- :class:`HitlAnswerer` -- a person (or a script) answering "Required actions" through ``PATCH .../hitlDetails``
  after a delay, recording when each request appeared and when it was answered.

Every process started here runs in a session of its own whose id is written to a file, and carries
``E2E_HARNESS_ID=<uuid>`` in its environment; :func:`reaper.sweep` kills exactly the processes of those sessions or
with that marker (and a reaper process does it if the test process dies without tearing down), so a stop never
touches anybody else's processes on a shared machine. Everything binds to 127.0.0.1 on free ports.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.deployment import reaper

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FINAL_DAG_RUN_STATES = {"success", "failed"}
FINAL_TI_STATES = {"success", "failed", "skipped", "upstream_failed", "removed"}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], what: str, timeout: float, *, interval: float = 0.3, alive: Callable[[], None] | None = None
) -> Any:
    """Call ``check`` until it returns something truthy (returned); ``alive`` raises when a process died."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if alive is not None:
            alive()
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f}s" + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file (empty when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ProcessBook:
    """
    The processes one test session started: a marker in their environment and the list of their session ids.

    :func:`reaper.sweep` kills exactly those; :meth:`start_reaper` makes a process do it if the test process dies
    without tearing down.
    """

    def __init__(self, work: Path) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.marker = uuid.uuid4().hex
        self.sessions_file = work / "sessions.txt"
        self.sessions_file.touch()
        self.reaper: subprocess.Popen[bytes] | None = None

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment with the marker (``os.environ`` by default)."""
        return {**(os.environ if base is None else base), reaper.MARKER_VARIABLE: self.marker}

    def register(self, pid: int) -> None:
        with self.sessions_file.open("a") as out:
            out.write(f"{pid}\n")

    def register_folder(self, folder: Path) -> None:
        """A throwaway folder outside the output folder, removed by the reaper if the test process dies."""
        with (self.sessions_file.parent / "folders.txt").open("a") as out:
            out.write(f"{folder}\n")

    def sweep(self, grace: float = 5.0) -> list[int]:
        """Kill every process of the book still alive; returns their pids."""
        return reaper.sweep(self.marker, str(self.sessions_file), grace=grace)

    def alive(self) -> list[int]:
        return reaper.marked_pids(self.marker, str(self.sessions_file))

    def start_reaper(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != reaper.MARKER_VARIABLE}
        self.reaper = subprocess.Popen(
            [sys.executable, str(Path(reaper.__file__)), str(os.getpid()), self.marker, str(self.sessions_file)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def close(self) -> list[int]:
        """Sweep (returns the pids it had to kill), then end the reaper: nothing is left for it to do."""
        left = self.sweep(grace=3)
        if self.reaper is not None and self.reaper.poll() is None:
            self.reaper.terminate()
            self.reaper.wait(timeout=10)
        return left


class ManagedProcess:
    """
    One long-running process in its own session (``start_new_session``), its output appended to a log.

    :param name: a short name (``scheduler``), also the log's file name.
    :param argv: the command.
    :param env: its whole environment.
    :param log_dir: where ``<name>.log`` goes; a restart appends to the same log after a header line.
    :param book: where its session is registered (for the final sweep and the reaper).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path | None = None,
        book: ProcessBook | None = None,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.book = book
        self.user = user
        self.stop_signal = stop_signal
        self.argv = argv
        self.env = dict(env)
        self.log = log_dir / f"{name}.log"
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start it (again)."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== e2e harness: start #{self.starts} of {self.name} at {datetime.now().isoformat()} =====\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        if self.book is not None:
            self.book.register(self.process.pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise with the log's tail when the process has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {self.process.returncode}; last lines of {self.log}:\n{tail(self.log)}")

    def _session_pids(self) -> list[int]:
        """Every process still in this process's session (Airflow's task processes change group, not session)."""
        if self.process is None:
            return []
        sid = self.process.pid
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) == sid:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def _descendants(self) -> list[int]:
        import psutil

        if self.process is None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def send(self, sig: int, *, group: bool = False) -> None:
        """Send a signal to the main process, or to its whole process group."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
        except ProcessLookupError:
            pass

    def stop(self, *, timeout: float = 30.0, group_first: bool = False) -> float:
        """
        SIGTERM (or its ``stop_signal``; to the main process, or its group with ``group_first``), wait up to ``timeout``, then SIGKILL the
        session and every descendant left (a task process that outlived its parent). Returns the seconds it took.
        """
        started = time.monotonic()
        if self.process is None:
            return 0.0
        family = set(self._descendants())
        self.send(self.stop_signal, group=group_first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self._kill_rest(family)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the process, its session and every descendant at once (a crash: nothing runs its shutdown)."""
        if self.process is None:
            return
        self._kill_rest(set(self._descendants()))

    def _kill_rest(self, family: set[int]) -> None:
        """SIGKILL ``family`` and the session, again until none of it is left: a dag-processor or a scheduler forks
        children all the time, and one forked between the listing and its parent's death would outlive it."""
        assert self.process is not None
        deadline = time.monotonic() + 10
        while True:
            family = {pid for pid in family | set(self._descendants()) | set(self._session_pids()) if not reaper.is_zombie(pid)}
            if not family or time.monotonic() > deadline:
                break
            for pid in family:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


# ---- the metadata database ------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian's layout), or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
    )
    return found[-1].parent if found else None


class PostgresProcess:
    """
    A throwaway PostgreSQL server for Airflow's metadata database: ``initdb`` into a fresh directory, ``postgres`` on
    127.0.0.1 and a free port (durability off: it is thrown away), database ``airflow`` owned by user ``airflow``.
    As root the server runs as the ``postgres`` user (PostgreSQL refuses root).

    :param book: the test session's process book.
    :param log_dir: where ``postgres.log`` goes.
    """

    def __init__(self, book: ProcessBook, log_dir: Path) -> None:
        import tempfile

        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql: `make e2e-deps` (apt-get install postgresql) installs it")
        self.bin = bin_dir
        self.user = "postgres" if os.geteuid() == 0 else None
        self.root = Path(tempfile.mkdtemp(prefix="e2e-postgres-"))  # not under pytest's 0700 tmp: the postgres user must reach it
        self.root.chmod(0o755)
        book.register_folder(self.root)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://airflow@127.0.0.1:{self.port}/airflow"
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.root),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300", "shared_buffers=64MB"):
            argv += ["-c", setting]
        env = book.env({k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")})
        self.process = ManagedProcess("postgres", argv, env, log_dir, cwd=self.root, book=book, user=self.user, stop_signal=signal.SIGINT)

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv,
            cwd=self.root,
            capture_output=True,
            check=False,
            timeout=120,
            user=self.user,
            group=self.user,
            extra_groups=[] if self.user else None,
        )
        with (self.log_dir / "postgres-setup.log").open("ab") as out:
            out.write(b"$ " + " ".join(argv).encode() + b"\n" + result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {(result.stdout + result.stderr).decode(errors='replace')[-2000:]}")

    def start(self, timeout: float = 60.0) -> PostgresProcess:
        if self.user:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", "airflow", "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.process.start()
        wait_until(
            lambda: (
                subprocess.run(
                    [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, check=False
                ).returncode
                == 0
            ),
            "PostgreSQL",
            timeout,
            alive=self.process.check_alive,
        )
        self._run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow"])
        return self

    def stop(self) -> None:
        self.process.stop(timeout=15)
        shutil.rmtree(self.root, ignore_errors=True)


# ---- the emulator ------------------------------------------------------------------------------------------


class EmulatorProcess:
    """
    The Buddy emulator run standalone (``python -m airflow_provider_buddy.testing.emulator``) from a scenario file.

    :param scenario: the scenario JSON file.
    :param work: a directory for its log.
    :param book: the test session's process book (marker and sessions).
    :param speed: emulated seconds per real second.
    :param port: the port (default: a free one).
    :param name: the log's name.
    """

    def __init__(
        self, scenario: Path, work: Path, *, book: ProcessBook, speed: float = 1.0, port: int | None = None, name: str = "emulator"
    ) -> None:
        self.scenario = Path(scenario)
        self.speed = speed
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = json.loads(self.scenario.read_text())
        self.token = str(data.get("token", "test-token"))
        self.workspace = str(data.get("workspace", "acme"))
        argv = [sys.executable, "-m", "airflow_provider_buddy.testing.emulator", "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--scenario", str(self.scenario), "--speed", str(speed)]
        work.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(name, argv, book.env(), work, book=book)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30.0) -> EmulatorProcess:
        self.process.start()
        wait_until(
            lambda: self.client.get("/__emulator__/").status_code == 200, f"emulator at {self.url}", timeout, alive=self.process.check_alive
        )
        return self

    def stop(self) -> None:
        self.process.stop(timeout=10)
        self.client.close()

    # control endpoints
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.client.request(method, "/__emulator__" + path, json=body)
        response.raise_for_status()
        return response.json()

    def info(self) -> dict[str, Any]:
        return dict(self._call("GET", "/"))

    def requests(self) -> list[dict[str, Any]]:
        """Every API request the emulator received, oldest first (method, path, json, status, time, ...)."""
        return list(self._call("GET", "/requests"))

    def reset_requests(self) -> None:
        self._call("POST", "/reset-requests", {})

    def executions(self, project: str, pipeline_id: int) -> list[dict[str, Any]]:
        """The pipeline's executions, newest first, as the emulator holds them (not as Airflow says)."""
        return list(self._call("GET", f"/executions/{project}/{pipeline_id}"))

    def approve(self, project: str, pipeline_id: int, execution_id: int, variables: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Approve as a person in Buddy's UI."""
        return dict(
            self._call(
                "POST", f"/approve/{project}/{pipeline_id}/{execution_id}", {"variables": variables} if variables is not None else {}
            )
        )

    def start_run(self, project: str, pipeline_id: int, **body: Any) -> dict[str, Any]:
        """Start a Buddy run as someone in Buddy's UI would."""
        result: dict[str, Any] = self._call("POST", f"/start/{project}/{pipeline_id}", body)
        return result

    def gorules_runs(self, project_id: str) -> list[dict[str, Any]]:
        """A GoRules project's runs as the API shows them, newest first."""
        result: list[dict[str, Any]] = self._call("GET", f"/gorules/projects/{project_id}/runs")
        return result

    def review(self, project_id: str, run_id: str, environment: str, *, approve: bool = True) -> dict[str, Any]:
        """A reviewer answers the run's review for ``environment`` in the BRMS UI."""
        body = {"environment": environment, "approve": approve, "comment": "e2e reviewer"}
        result: dict[str, Any] = self._call("POST", f"/gorules/projects/{project_id}/runs/{run_id}/review", body)
        return result

    def set_speed(self, speed: float) -> None:
        """Emulated seconds per real second from now on (0 pauses the clock)."""
        self._call("POST", "/speed", {"speed": speed})
        if speed > 0:
            self.speed = speed

    def advance(self, seconds: float) -> None:
        self._call("POST", "/advance", {"seconds": seconds})


# ---- Airflow's REST API --------------------------------------------------------------------------------------


class AirflowApi:
    """
    Airflow's public REST API with a bearer token from ``POST /auth/token`` (taken again on a 401).

    Reads are retried a few times on 5xx and connection errors (SQLite under load answers "database is locked"
    now and then); writes are sent once unless the caller asks for more.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self._token: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def token(self, *, fresh: bool = False) -> str:
        with self._lock:
            if self._token is None or fresh:
                response = self.client.post("/auth/token", json={"username": self.username, "password": self.password})
                response.raise_for_status()
                self._token = str(response.json()["access_token"])
            return self._token

    def request(self, method: str, path: str, *, attempts: int | None = None, **kwargs: Any) -> httpx.Response:
        """One call with the bearer token; GETs (and writes given ``attempts``) are retried on 5xx / connection errors."""
        tries = attempts if attempts is not None else (4 if method == "GET" else 1)
        response: httpx.Response | None = None
        for attempt in range(max(1, tries)):
            try:
                response = self.client.request(method, path, headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
                if response.status_code == 401:
                    self.token(fresh=True)
                    response = self.client.request(method, path, headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
            except httpx.TransportError:
                if attempt + 1 >= tries:
                    raise
                time.sleep(0.5 * (attempt + 1))
                continue
            if response.status_code < 500 or attempt + 1 >= tries:
                return response
            time.sleep(0.5 * (attempt + 1))
        assert response is not None
        return response

    def get_json(self, path: str, **params: Any) -> Any:
        response = self.request("GET", path, params=params or None)
        response.raise_for_status()
        return response.json()

    # DAGs and runs
    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.get_json("/api/v2/dags", limit=100)["dags"]}

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}, attempts=3).raise_for_status()

    def trigger(self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Start a DAG run with this id and conf; returns its id."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        response = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body, attempts=3)
        if response.status_code == 409:  # a retried POST that went through the first time
            return run_id
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def wait_dag_runs(
        self, runs: Iterable[tuple[str, str]], timeout: float, *, on_poll: Callable[[], None] | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Wait until every (dag_id, run_id) has ended; returns each run's record. Raises TimeoutError naming the stragglers."""
        pending = set(runs)
        ended: dict[tuple[str, str], dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while pending:
            if on_poll is not None:
                on_poll()
            for key in sorted(pending):
                try:
                    record = self.dag_run(*key)
                except httpx.HTTPError:
                    continue
                if record.get("state") in FINAL_DAG_RUN_STATES:
                    ended[key] = record
                    pending.discard(key)
            if not pending:
                break
            if time.monotonic() > deadline:
                states = {f"{d}/{r}": self.task_states(d, r) for d, r in sorted(pending)}
                raise TimeoutError(f"DAG runs still going after {timeout:.0f}s: {json.dumps(states)}")
            time.sleep(1.0)
        return ended

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {ti["task_id"]: str(ti.get("state")) for ti in self.task_instances(dag_id, run_id)}

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of a task instance (``GET .../taskInstances/{task}/tries``): try_number, state, start/end, ..."""
        return list(self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries")["task_instances"])

    def extra_links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"))

    def event_logs(self, event: str) -> list[dict[str, Any]]:
        """Airflow's audit log entries of one kind (e.g. ``state mismatch``), all pages."""
        found: list[dict[str, Any]] = []
        while True:
            page = self.get_json("/api/v2/eventLogs", event=event, limit=100, offset=len(found))
            found += page["event_logs"]
            if len(found) >= page["total_entries"] or not page["event_logs"]:
                return found

    # human-in-the-loop
    def pending_hitl(self) -> list[dict[str, Any]]:
        """Every HITL request not answered yet, across all DAG runs."""
        return list(self.get_json("/api/v2/dags/~/dagRuns/~/hitlDetails", response_received=False, limit=100)["hitl_details"])

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        return dict(self.get_json(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"))

    def answer_hitl(
        self, dag_id: str, run_id: str, task_id: str, choice: str, params_input: Mapping[str, Any] | None = None, map_index: int = -1
    ) -> httpx.Response:
        """Answer a HITL request as the UI does (``PATCH .../hitlDetails``)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"
        return self.request("PATCH", path, json={"chosen_options": [choice], "params_input": dict(params_input or {})})


# ---- a person answering "Required actions" ---------------------------------------------------------------------


@dataclass
class Answer:
    """What the answerer does for one DAG run's gate: the choice, the form's values, the delay range (seconds)."""

    choice: str
    params_input: dict[str, Any] = field(default_factory=dict)
    delay: tuple[float, float] = (2.0, 5.0)


@dataclass
class AnswerRecord:
    """One HITL request the answerer saw, and what became of its answer."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    created_at: str
    seen_after: float  # seconds from the request's created_at to when the answerer saw it
    choice: str
    answered_after: float | None = None  # seconds from created_at to the PATCH's answer
    status: int | None = None
    error: str | None = None


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class HitlAnswerer:
    """
    Watches Airflow's pending HITL requests (``GET /dags/~/dagRuns/~/hitlDetails?response_received=false``) and answers
    those of DAG runs it has a plan for, after the plan's delay, through ``PATCH .../hitlDetails``.

    Each try's request is answered once (a gate retried by Airflow asks again: that is a new request, told apart by
    its try number and creation time). DAG runs without a plan are left alone (the browser test answers those).

    :param api: its own REST client, so its polling does not queue behind the test's calls.
    :param interval: seconds between looks.
    """

    def __init__(self, api: AirflowApi, interval: float = 0.1) -> None:
        self.api = api
        self.interval = interval
        self.plans: dict[str, Answer] = {}
        self.records: list[AnswerRecord] = []
        self._seen: set[tuple[str, str, str, int, str]] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hitl-answerer", daemon=True)
        self._workers: list[threading.Thread] = []

    def plan(self, run_id: str, answer: Answer) -> None:
        with self._lock:
            self.plans[run_id] = answer

    def start(self) -> HitlAnswerer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for worker in self._workers:
            worker.join(timeout=30)
        self.api.close()

    def records_for(self, run_ids: Iterable[str]) -> list[AnswerRecord]:
        wanted = set(run_ids)
        with self._lock:
            return [r for r in self.records if r.run_id in wanted]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pending = self.api.pending_hitl()
            except Exception:  # the api-server restarting or busy: look again
                pending = []
            now = time.time()
            for detail in pending:
                ti = detail["task_instance"]
                run_id = ti["dag_run_id"]
                with self._lock:
                    answer = self.plans.get(run_id)
                key = (ti["dag_id"], run_id, ti["task_id"], int(ti["try_number"]), str(detail["created_at"]))
                if answer is None or key in self._seen:
                    continue
                self._seen.add(key)
                created = str(detail["created_at"])
                record = AnswerRecord(
                    ti["dag_id"], run_id, ti["task_id"], int(ti["try_number"]), created, now - timestamp(created), answer.choice
                )
                with self._lock:
                    self.records.append(record)
                worker = threading.Thread(target=self._answer, args=(record, answer, int(ti.get("map_index", -1))), daemon=True)
                worker.start()
                self._workers.append(worker)
            self._stop.wait(self.interval)

    def _answer(self, record: AnswerRecord, answer: Answer, map_index: int) -> None:
        due = timestamp(record.created_at) + random.uniform(*answer.delay)
        while time.time() < due and not self._stop.is_set():
            time.sleep(min(0.05, max(0.0, due - time.time())))
        for _ in range(40):  # until Airflow takes it: the database may be busy
            try:
                response = self.api.answer_hitl(record.dag_id, record.run_id, record.task_id, answer.choice, answer.params_input, map_index)
            except httpx.HTTPError as exc:
                record.error = repr(exc)
                time.sleep(0.5)
                continue
            record.status = response.status_code
            record.answered_after = time.time() - timestamp(record.created_at)
            if response.status_code < 300:
                record.error = None
                return
            record.error = response.text[:300]
            if response.status_code in (400, 403, 404, 409, 422):
                return  # e.g. already answered, or the try ended: a person would see it is gone
            time.sleep(0.5)


# ---- the deployment ------------------------------------------------------------------------------------------


COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

SQLITE_SETTINGS = '''\
"""e2e harness: SQLite connection arguments. Four Airflow processes share one SQLite file: a writer waits up to a
minute for the lock instead of failing after Python's default 5 s (seen here without it: "database is locked" in
Trigger.clean_unused ended the triggerer process, and every deferred task waited forever)."""

CONNECT_ARGS = {"timeout": 60}
'''

LOCAL_SETTINGS = '''\
"""e2e harness: the deployment's cluster policy. Caps tasks' poll intervals (the examples are written for real
Buddy and BRMS runs that take minutes) so a test does not sit idle; nothing else about the tasks changes."""

MAX_POLL = {max_poll!r}


def task_policy(task):
    for attribute in ("poll_interval", "poke_interval"):
        value = getattr(task, attribute, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > MAX_POLL:
            setattr(task, attribute, MAX_POLL)
'''


class AirflowDeployment:
    """
    Airflow as separate processes on this machine, LocalExecutor, in a throwaway home; the metadata database is a
    throwaway PostgreSQL (:class:`PostgresProcess`) or SQLite in the home.

    :param work: a fresh directory: ``airflow-home/``, ``dags/``, ``logs/`` (one log per component).
    :param dags: DAG files copied into the DAGs folder.
    :param connections: ``AIRFLOW_CONN_*`` values (JSON form) by connection id.
    :param book: the test session's process book (marker and sessions).
    :param max_poll: the cluster policy caps tasks' ``poll_interval`` / ``poke_interval`` at this (seconds).
    :param extra_env: more environment (Airflow config as ``AIRFLOW__SECTION__KEY``).
    :param database_url: the metadata database (a :class:`PostgresProcess` URL); None for SQLite in the home.
    """

    def __init__(
        self,
        work: Path,
        dags: Iterable[Path],
        connections: Mapping[str, Mapping[str, Any]],
        *,
        book: ProcessBook,
        database_url: str | None = None,
        max_poll: float = 2.0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.work = work
        self.home = work / "airflow-home"
        self.dags_folder = work / "dags"
        self.logs = work / "logs"
        for folder in (self.home / "config", self.dags_folder, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        for dag in dags:
            shutil.copy(dag, self.dags_folder / dag.name)
        (self.home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS.format(max_poll=max_poll))
        (self.home / "config" / "e2e_sqlite.py").write_text(SQLITE_SETTINGS)
        self.book = book
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(connections, extra_env or {})
        airflow = str(VENV_BIN / "airflow")
        argv = {
            "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.port)],
            "scheduler": [airflow, "scheduler"],
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer"],
        }
        self.components = {name: ManagedProcess(name, argv[name], self.env, self.logs, cwd=work, book=book) for name in COMPONENTS}
        self.api: AirflowApi | None = None
        self.timings: dict[str, float] = {}

    def _environment(self, connections: Mapping[str, Mapping[str, Any]], extra: Mapping[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "BUDDY_", "PYTEST", "E2E_"))}
        env = {
            **base,
            reaper.MARKER_VARIABLE: self.book.marker,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(self.home / "config"), base.get("PYTHONPATH", "")) if p),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        }
        if self.database_url:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.database_url
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = self.database_url  # psycopg 3 does both
        else:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{self.home / 'airflow.db'}"
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "e2e_sqlite.CONNECT_ARGS"
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = "e2e_sqlite.CONNECT_ARGS"
        for conn_id, value in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(value))
        env.update(extra)
        return env

    # ---- life cycle ----
    def migrate(self) -> None:
        started = time.monotonic()
        result = subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"], env=self.env, cwd=self.work, capture_output=True, check=False, timeout=300
        )
        (self.logs / "db-migrate.log").write_bytes(result.stdout + result.stderr)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{tail(self.logs / 'db-migrate.log')}")
        if not self.database_url:
            import sqlite3

            with sqlite3.connect(self.home / "airflow.db") as db:  # readers never block the one writer (kept in the file)
                db.execute("PRAGMA journal_mode=WAL")
        self.timings["db migrate"] = time.monotonic() - started

    def start(self, dag_ids: Iterable[str], timeout: float = 240.0) -> AirflowDeployment:
        """Migrate the database, start the four components, wait for health and for the DAGs to be parsed."""
        started = time.monotonic()
        self.migrate()
        for component in self.components.values():
            component.start()
        self.wait_healthy(timeout)
        self.timings["healthy"] = time.monotonic() - started
        self.api = self.new_api()
        wanted = set(dag_ids)
        api = self.api
        try:
            wait_until(lambda: wanted <= api.dag_ids(), f"DAGs {sorted(wanted)} parsed", 60, interval=1.0, alive=self.check_alive)
        except TimeoutError:  # the dag-processor's first scan is late: parse them now, as a person would
            self.reserialize()
            wait_until(lambda: wanted <= api.dag_ids(), f"DAGs {sorted(wanted)} parsed", 60, interval=1.0, alive=self.check_alive)
        self.timings["dags parsed"] = time.monotonic() - started
        return self

    def reserialize(self) -> None:
        subprocess.run(
            [str(VENV_BIN / "airflow"), "dags", "reserialize"], env=self.env, cwd=self.work, capture_output=True, check=False, timeout=300
        )

    @property
    def rest(self) -> AirflowApi:
        assert self.api is not None, "the deployment has not started"
        return self.api

    def new_api(self) -> AirflowApi:
        """Another REST client (own connection pool and token), e.g. for a background thread."""
        return AirflowApi(self.url, "admin", self.admin_password())

    def admin_password(self) -> str:
        path = self.home / "simple_auth_manager_passwords.json.generated"
        passwords = wait_until(lambda: json.loads(path.read_text()) if path.exists() else None, "the admin password file", 60)
        return str(passwords["admin"])

    def check_alive(self) -> None:
        """Raise (with its log's tail) when a component that should run has exited."""
        for component in self.components.values():
            if component.starts:
                component.check_alive()

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json())

    def healthy(self, names: Iterable[str] = ("scheduler", "triggerer", "dag_processor", "metadatabase")) -> bool:
        data = self.health()
        return all((data.get(name) or {}).get("status") == "healthy" for name in names)

    def wait_healthy(
        self, timeout: float = 120.0, names: Iterable[str] = ("scheduler", "triggerer", "dag_processor", "metadatabase")
    ) -> None:
        wanted = tuple(names)
        wait_until(lambda: self.healthy(wanted), f"Airflow healthy ({', '.join(wanted)})", timeout, interval=0.5, alive=self.check_alive)

    # ---- component control ----
    def stop_component(self, name: str, *, timeout: float = 60.0) -> float:
        """SIGTERM the component's main process (as a service manager does), SIGKILL what is left after ``timeout``."""
        return self.components[name].stop(timeout=timeout)

    def kill_component(self, name: str) -> None:
        """SIGKILL the component and everything it started (a crash)."""
        self.components[name].kill()

    def start_component(self, name: str) -> None:
        self.components[name].start()

    def restart_component(self, name: str, *, pause: float = 1.0) -> float:
        """SIGTERM, wait for it to exit, start it again after ``pause``; returns how long the old one took to stop."""
        took = self.stop_component(name)
        time.sleep(pause)
        self.start_component(name)
        return took

    def stop(self) -> None:
        """Stop every component (api-server last); the process book's sweep then kills anything left."""
        if self.api is not None:
            self.api.close()
        for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
            self.components[name].stop(timeout=20, group_first=True)

    # ---- logs ----
    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def race_lines(self) -> list[dict[str, str]]:
        """The scheduler's reports of Airflow's defer race: a task instance failed because its exit was reported late."""
        found = []
        for line in self.log_text("scheduler").splitlines():
            parsed = parse_race_line(line)
            if parsed is not None:
                found.append(parsed)
        return found


RACE_LINE = re.compile(
    r"task instance <TaskInstance: (?P<dag>[^.\s]+)\.(?P<task>\S+) (?P<run>\S+) (?:map_index=\S+ )?\[(?P<state>\w+)\][^>]*> "
    r"finished with state (?P<reported>\w+), but the task instance's state attribute is (?P<attr>\w+)"
)


def parse_race_line(line: str) -> dict[str, str] | None:
    """The parts of a scheduler line "Executor ... reported that the task instance <...> finished with state success, but ..."."""
    found = RACE_LINE.search(line)
    if not found:
        return None
    parts = found.groupdict()
    parts["line"] = line.strip()
    return parts
