"""The production-shaped deployment of the scale-out scenario, on the real-deployment suite's harness.

PostgreSQL (metadata database and Celery's result backend), Redis (Celery's broker), ``airflow api-server``,
``scheduler``, ``dag-processor``, two ``airflow triggerer`` processes, one ``airflow celery worker``
(``CeleryExecutor``), and the Buddy emulator standalone -- every one a process of its own, started and tracked by
:mod:`tests.deployment.harness` (sessions, marker, reaper). Added here:

- :class:`RedisProcess` -- Debian's ``redis-server`` on 127.0.0.1 and a free port, no persistence, its own folder;
- :class:`LabelProxy` -- ``label_proxy.py``: each Airflow process reaches the emulator through a port of its own, and
  the emulator's request log records which one asked (header ``X-Scale-Client``);
- :class:`ProcessMeter` -- CPU (user + system) and RSS of each component's process tree, sampled every second;
- :class:`MetaDb` -- read-only looks at Airflow's own tables (triggers per triggerer, task instance states).

The provider needs nothing of its own for any of this: only Airflow's settings differ from the single-process
suite (executor, broker, result backend, triggerer health threshold).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deployment.harness import VENV_BIN, ManagedProcess, ProcessBook, free_port, wait_until

HERE = Path(__file__).resolve().parent


def redis_server() -> str | None:
    """Debian's redis-server, or None."""
    return shutil.which("redis-server") or (str(Path("/usr/bin/redis-server")) if Path("/usr/bin/redis-server").exists() else None)


class RedisProcess:
    """
    A throwaway Redis for Celery's broker: 127.0.0.1, a free port, no RDB/AOF persistence, its own folder.

    :param book: the test session's process book.
    :param log_dir: where ``redis.log`` goes.
    """

    def __init__(self, book: ProcessBook, log_dir: Path) -> None:
        binary = redis_server()
        if binary is None:
            raise RuntimeError("no redis-server: `make scale-deps` (apt-get install redis-server) installs it")
        self.root = Path(tempfile.mkdtemp(prefix="scale-redis-"))
        book.register_folder(self.root)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        argv = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root), "--save", "", "--appendonly", "no"]
        argv += ["--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning"]
        self.process = ManagedProcess("redis", argv, book.env(), log_dir, cwd=self.root, book=book)

    def ping(self) -> bool:
        import socket

        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def start(self, timeout: float = 30.0) -> RedisProcess:
        self.process.start()
        wait_until(self.ping, "Redis", timeout, alive=self.process.check_alive)
        return self

    def stop(self) -> None:
        self.process.stop(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


class LabelProxy:
    """
    ``label_proxy.py`` in its own process: one local port per label, each forwarding to the emulator and adding
    ``X-Scale-Client: <label>`` to every request it passes on.

    :param target_port: the emulator's port on 127.0.0.1.
    :param labels: the labels (``triggerer-1``, ``celery-worker``, ...).
    """

    def __init__(self, target_port: int, labels: Iterable[str], book: ProcessBook, log_dir: Path) -> None:
        self.ports = {label: free_port() for label in labels}
        argv = [str(VENV_BIN / "python"), str(HERE / "label_proxy.py"), "127.0.0.1", str(target_port)]
        argv += [f"{label}={port}" for label, port in self.ports.items()]
        self.process = ManagedProcess("label-proxy", argv, book.env(), log_dir, book=book)

    def url(self, label: str) -> str:
        return f"http://127.0.0.1:{self.ports[label]}"

    def start(self, timeout: float = 30.0) -> LabelProxy:
        import socket

        self.process.start()

        def listening() -> bool:
            for port in self.ports.values():
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    pass
            return True

        wait_until(listening, "label proxy", timeout, alive=self.process.check_alive)
        return self

    def stop(self) -> None:
        self.process.stop(timeout=5)


@dataclass
class Sample:
    at: float  # time.time()
    cpu: float  # user + system seconds of the whole tree (what the live processes have used so far)
    rss: int  # bytes, summed over the tree
    processes: int


@dataclass
class Series:
    """One component's samples."""

    name: str
    samples: list[Sample] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.at <= end]

    def cpu_seconds(self, start: float, end: float) -> float:
        """CPU used between two moments (by the processes alive at both samples' times; the tree's main processes live on)."""
        inside = self.between(start, end)
        if len(inside) < 2:
            return 0.0
        return max(0.0, inside[-1].cpu - inside[0].cpu)

    def cpu_share(self, start: float, end: float) -> float:
        """Average share of one core between two moments."""
        inside = self.between(start, end)
        if len(inside) < 2 or inside[-1].at <= inside[0].at:
            return 0.0
        return self.cpu_seconds(start, end) / (inside[-1].at - inside[0].at)

    def rss_peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        return max((s.rss for s in self.between(start, end)), default=0)

    def rss_last(self, end: float = float("inf")) -> int:
        inside = [s for s in self.samples if s.at <= end]
        return inside[-1].rss if inside else 0


MACHINE = "machine"


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot, all cores (``/proc/stat``: all but idle and iowait)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_used_memory() -> int:
    info = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            info[name] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


class ProcessMeter:
    """
    Samples CPU (user + system, ``psutil``) and RSS of each watched process and its descendants every ``interval``
    seconds, in a thread; and the whole machine (series ``machine``: busy CPU of all cores, used memory). A killed
    process keeps its samples up to the kill.
    """

    def __init__(self, processes: Mapping[str, ManagedProcess], interval: float = 1.0) -> None:
        self.processes = dict(processes)
        self.interval = interval
        self.series = {name: Series(name) for name in [*self.processes, MACHINE]}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)
        self._cpu_of_gone: dict[str, dict[int, float]] = {name: {} for name in self.processes}

    def start(self) -> ProcessMeter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sample_now(self) -> None:
        import psutil

        now = time.time()
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.series[MACHINE].samples.append(Sample(now, machine_busy_seconds(), machine_used_memory(), 0))
        for name, managed in self.processes.items():
            if not managed.running or managed.pid is None:
                continue
            try:
                root = psutil.Process(managed.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            cpu_by_pid: dict[int, float] = {}
            rss = 0
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    cpu_by_pid[proc.pid] = times.user + times.system
                    rss += proc.memory_info().rss
            # a short-lived child (a task process) that ended between samples keeps the CPU it was last seen with
            known = self._cpu_of_gone[name]
            known.update(cpu_by_pid)
            self.series[name].samples.append(Sample(now, sum(known.values()), rss, len(cpu_by_pid)))

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                self.sample_now()
            self._stop.wait(self.interval)


class MetaDb:
    """Read-only queries on Airflow's metadata database (PostgreSQL) -- what Airflow itself records."""

    def __init__(self, sqlalchemy_url: str) -> None:
        self.dsn = sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(sql, tuple(params)).fetchall())

    def triggerer_jobs(self) -> list[dict[str, Any]]:
        rows = self.rows(
            "select id, state, latest_heartbeat, end_date, start_date from job where job_type = 'TriggererJob' order by id",
        )
        return [dict(zip(("id", "state", "latest_heartbeat", "end_date", "start_date"), row, strict=True)) for row in rows]

    def triggers_by_triggerer(self, dag_prefix: str) -> dict[int | None, list[int]]:
        """Trigger ids of task instances of DAGs whose id starts with ``dag_prefix``, by the triggerer job holding them."""
        rows = self.rows(
            "select t.triggerer_id, t.id from trigger t join task_instance ti on ti.trigger_id = t.id where ti.dag_id like %s",
            (dag_prefix + "%",),
        )
        held: dict[int | None, list[int]] = {}
        for triggerer_id, trigger_id in rows:
            held.setdefault(triggerer_id, []).append(int(trigger_id))
        return held

    def trigger_tasks(self, trigger_ids: Iterable[int]) -> dict[int, tuple[str, str, str]]:
        ids = list(trigger_ids)
        if not ids:
            return {}
        rows = self.rows("select trigger_id, dag_id, run_id, task_id from task_instance where trigger_id = any(%s)", (ids,))
        return {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}

    def dag_run_states(self, dag_prefix: str) -> dict[str, str]:
        rows = self.rows("select run_id, state from dag_run where dag_id like %s", (dag_prefix + "%",))
        return {str(run_id): str(state) for run_id, state in rows}

    def task_states(self, run_ids: Iterable[str]) -> dict[tuple[str, str], tuple[str, int]]:
        """(run, task) -> (state, try number) of the given DAG runs' task instances."""
        rows = self.rows("select run_id, task_id, state, try_number from task_instance where run_id = any(%s)", (list(run_ids),))
        return {(str(r[0]), str(r[1])): (str(r[2]), int(r[3] or 0)) for r in rows}

    def ti_states(self, dag_prefix: str) -> dict[str, int]:
        rows = self.rows("select state, count(*) from task_instance where dag_id like %s group by state", (dag_prefix + "%",))
        return {str(state): int(count) for state, count in rows}

    def task_ends(self, dag_prefix: str) -> dict[tuple[str, str, str], tuple[str, Any, Any]]:
        """(dag, run, task) -> (state, end_date, triggerer job that ended it when known)."""
        rows = self.rows(
            "select dag_id, run_id, task_id, state, end_date, triggerer_id from task_instance ti "
            "left join trigger t on t.id = ti.trigger_id where dag_id like %s",
            (dag_prefix + "%",),
        )
        return {(str(r[0]), str(r[1]), str(r[2])): (str(r[3]), r[4], r[5]) for r in rows}


class EmulatorClock:
    """
    The emulator's clock as the tests moved it: every speed change and jump, so an emulated moment (a run's
    ``finish_date``) maps back to the real moment it happened. The emulator starts at real time, speed 1.
    """

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.segments: list[tuple[float, float, float]] = [(0.0, 0.0, 1.0)]  # (real, emulated, speed) from then on

    def emulated(self, real: float) -> float:
        at, emu, speed = self.segments[-1]
        return emu + (real - at) * speed

    def set_speed(self, speed: float) -> None:
        self.emulator.set_speed(speed)
        now = time.time()
        self.segments.append((now, self.emulated(now), speed))

    def advance(self, seconds: float) -> None:
        self.emulator.advance(seconds)
        now = time.time()
        self.segments.append((now, self.emulated(now) + seconds, self.segments[-1][2]))

    def real(self, emulated: float) -> float:
        """The real moment of an emulated one (a moment skipped by a jump maps to the jump)."""
        for i in range(len(self.segments) - 1, -1, -1):
            at, emu, speed = self.segments[i]
            if emulated >= emu:
                moment = at + (emulated - emu) / speed if speed > 0 else at
                return min(moment, self.segments[i + 1][0]) if i + 1 < len(self.segments) else moment
        return emulated

    @property
    def speed(self) -> float:
        return self.segments[-1][2]


def airflow_version() -> str:
    result = subprocess.run([str(VENV_BIN / "python"), "-c", "import airflow; print(airflow.__version__)"], capture_output=True, text=True)
    return result.stdout.strip()


def cpu_count() -> int:
    return os.cpu_count() or 1
