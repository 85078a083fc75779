"""
Thousands of waiting tasks on one triggerer: ``BuddyExecutionTrigger`` side by side with the HTTP
provider's ``HttpSensorTrigger`` and a floor (one shared aiohttp session, bare get / parse / sleep).

``python benchmarks/triggerer_scale.py [--n 1000] [--interval 2] [--duration 20] [--repeat 3]``
(``make bench BENCH_ARGS="--repeat 3"``). See ``benchmarks/README.md`` for what is measured and how.

Every part runs in its own process: the HTTPS server (``_server.py``), each kind of waiter for each
repeat (``_waiters.py``), the import timings and the worker-hold measurement (``_worker_hold.py``).
Everything talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KINDS = ("ours", "http", "floor")
LABELS = {"ours": "ours (BuddyExecutionTrigger)", "http": "HTTP provider (HttpSensorTrigger)", "floor": "floor (shared aiohttp session)"}
SERVER_START_TIMEOUT = 30.0

# The targets of issue 6, as (metric, test, words).
TARGETS = {
    "cpu_vs_http": "CPU per request <= 1/4 of the HTTP provider's",
    "cpu_vs_floor": "CPU per request within 2x of the floor",
    "rss_vs_http": "RSS per waiting trigger <= 1/5 of the HTTP provider's",
    "connections": "connections opened <= 32 in total",
    "lateness": "mean lateness <= 1 s",
    "errors": "0 errors",
    "fan_in": "ten waits on one execution cost one request per interval",
    "imports": "importing our operators adds <= 30 ms",
    "worker_hold": "a waiting deferrable sensor holds a worker <= 2 s",
}


# ---- the server process --------------------------------------------------------------------------
class Server:
    """The HTTPS stand-in for Buddy, in its own process, steered through its control port."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log = open(directory / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "_server.py"), "--dir", str(directory)], stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError(f"the benchmark server did not start; see {directory / 'server.log'}")
        self.port, self.control_port = int(line[1]), int(line[2])
        self.ca = str(directory / "ca.pem")

    def control(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control_port}{path}", timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ---- one run of one kind -------------------------------------------------------------------------
def run_kind(
    server: Server,
    kind: str,
    *,
    n: int,
    executions: int,
    interval: float,
    duration: float,
    workdir: Path,
    tag: str,
    profile: bool = False,
    poller: str | None = None,
) -> dict[str, Any]:
    """Run ``kind`` in a fresh process against a freshly reset server; return its metrics."""
    server.control(f"/reset?d={duration}")
    out = workdir / f"{tag}-{kind}.json"
    command = [
        sys.executable,
        str(HERE / "_waiters.py"),
        "--kind",
        kind,
        "--port",
        str(server.port),
        "--ca",
        server.ca,
        "--n",
        str(n),
        "--executions",
        str(executions),
        "--interval",
        str(interval),
        "--duration",
        str(duration),
        "--out",
        str(out),
    ]
    if profile:
        command += ["--profile", str(workdir / f"{tag}-{kind}.prof")]
    if poller and kind == "ours":
        command += ["--poller", poller]
    env = {**os.environ, "AIRFLOW_HOME": str(workdir / "airflow-home"), "PYTHONUNBUFFERED": "1"}
    with open(workdir / f"{tag}-{kind}.log", "w") as log:
        process = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=duration + 10 * interval + 240, check=False
        )
    stats = server.control("/stats")
    if process.returncode != 0 or not out.exists():
        raise RuntimeError(f"{kind} run failed (exit {process.returncode}); see {workdir / f'{tag}-{kind}.log'}")
    return metrics(json.loads(out.read_text()), stats)


def metrics(run: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """The report's numbers for one run, from the waiter process's record and the server's counters."""
    n, interval = run["n"], run["interval"]
    finish = stats["finish_times"]
    lateness: list[float] = []
    errors: list[str] = []
    for result in run["results"]:
        if result["error"] is not None:
            errors.append(result["error"])
            continue
        finished_at = finish.get(f"1/{result['execution_id']}")
        if finished_at is None:
            errors.append("event for an execution never polled")
            continue
        late = result["event_time"] - finished_at
        if late < 0:
            errors.append("event before the execution finished")
        lateness.append(late)
    bad_statuses = {status: count for status, count in stats["statuses"].items() if status not in ("200", "404")}
    if bad_statuses:
        errors.append(f"server answered {bad_statuses}")
    if stats["tls_failures"]:
        errors.append(f"{stats['tls_failures']} failed TLS handshakes")
    requests = stats["requests"]
    return {
        "requests": requests,
        "polls_per_wait": requests / n,
        "cpu_ms_per_request": 1000.0 * run["cpu_s"] / requests if requests else float("nan"),
        "cpu_s": run["cpu_s"],
        "gc_ms_per_request": 1000.0 * run["gc_s"] / requests if requests else float("nan"),
        "rss_peak_mb": run["rss_peak"] / 2**20,
        "rss_per_trigger_kb": (run["rss_peak"] - run["rss_before"]) / n / 1024,
        "connections": stats["tcp_connections"],
        "handshakes": stats["tls_handshakes"],
        "max_open_connections": stats["max_open_connections"],
        "lateness_mean_s": statistics.fmean(lateness) if lateness else float("nan"),
        "lateness_max_s": max(lateness) if lateness else float("nan"),
        "lateness_p50_s": statistics.median(lateness) if lateness else float("nan"),
        "missed_a_poll": sum(1 for late in lateness if late > interval / 2),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "requests_per_interval": requests_per_interval(stats["request_times"], interval, stats["duration"]),
        "executions": run["executions"],
        "wall_s": run["wall_s"],
    }


def requests_per_interval(times: Sequence[float], interval: float, duration: float) -> float:
    """Median requests per interval while every execution is still going (the first and partial windows left out)."""
    if not times:
        return float("nan")
    start = min(times)
    windows = max(1, int(duration // interval) - 1)
    counts = [0] * windows
    for t in times:
        index = int((t - start) // interval) - 1
        if 0 <= index < windows:
            counts[index] += 1
    return float(statistics.median(counts))


def median_metrics(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-metric medians over repeats (errors are summed: any error in any repeat counts)."""
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key == "error_samples":
            merged[key] = sorted({e for run in runs for e in run[key]})[:5]
        elif key == "errors":
            merged[key] = sum(run[key] for run in runs)
        elif isinstance(value, (int, float)):
            merged[key] = statistics.median(run[key] for run in runs)
        else:
            merged[key] = value
    merged["repeats"] = len(runs)
    return merged


# ---- import cost -----------------------------------------------------------------------------------
IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S+)")
OPERATORS = "airflow_provider_buddy.operators.buddy"
TIMED_IMPORT = "import time, airflow.sdk; start = time.perf_counter(); import {module}; print((time.perf_counter() - start) * 1000)"


def measure_imports(rounds: int, workdir: Path) -> dict[str, Any]:
    """
    What importing our operators adds to a DAG file that already imports ``airflow.sdk`` (medians of ``rounds``
    fresh interpreters): the wall time of the import, its ``-X importtime`` cumulative time, the largest
    modules it loads, and ``import airflow.sdk`` alone for scale.
    """
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(workdir / "airflow-home")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=True)

    run("-c", f"import {OPERATORS}")  # warm the file cache and bytecode
    wall: list[float] = []
    cumulative: list[float] = []
    sdk_alone: list[float] = []
    modules: dict[str, list[int]] = {}
    for _ in range(rounds):
        wall.append(float(run("-c", TIMED_IMPORT.format(module=OPERATORS)).stdout.strip().splitlines()[-1]))
        lines = run("-X", "importtime", "-c", f"import airflow.sdk; import {OPERATORS}").stderr.splitlines()
        parsed = [m for m in (IMPORT_LINE.match(line) for line in lines) if m]
        after = next(i for i, m in enumerate(parsed) if m.group(4) == "airflow.sdk" and len(m.group(3)) == 1) + 1
        cumulative.append(sum(int(m.group(2)) for m in parsed[after:] if len(m.group(3)) == 1) / 1000.0)
        for m in parsed[after:]:
            modules.setdefault(m.group(4), []).append(int(m.group(1)))
        alone = [
            m for m in (IMPORT_LINE.match(line) for line in run("-X", "importtime", "-c", "import airflow.sdk").stderr.splitlines()) if m
        ]
        sdk_alone.append(sum(int(m.group(2)) for m in alone if len(m.group(3)) == 1) / 1000.0)
    top = sorted(((statistics.median(v) / 1000.0, name) for name, v in modules.items()), reverse=True)[:8]
    return {
        "statement": f"import {OPERATORS}",
        "baseline": "import airflow.sdk",
        "delta_ms": statistics.median(wall),
        "importtime_ms": statistics.median(cumulative),
        "sdk_ms": statistics.median(sdk_alone),
        "modules": len(modules),
        "top_modules": [{"module": name, "self_ms": round(ms, 2)} for ms, name in top],
        "rounds": rounds,
    }


# ---- worker hold ------------------------------------------------------------------------------------
def measure_worker_hold(wait_seconds: float, speed: float, workdir: Path) -> dict[str, Any]:
    """Worker seconds of a deferrable BuddyExecutionSensor waiting ``wait_seconds`` (emulated) in dag.test."""
    out = workdir / "worker-hold.json"
    env = {**os.environ, "AIRFLOW_HOME": str(workdir / "airflow-worker-home"), "PYTHONUNBUFFERED": "1"}
    with open(workdir / "worker-hold.log", "w") as log:
        done = subprocess.run(
            [sys.executable, str(HERE / "_worker_hold.py"), "--wait", str(wait_seconds), "--speed", str(speed), "--out", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=wait_seconds / speed + 300,
            check=False,
        )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"worker-hold run failed (exit {done.returncode}); see {workdir / 'worker-hold.log'}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# ---- the report ---------------------------------------------------------------------------------------
def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdicts(
    scale: dict[str, dict[str, Any]], fan_in: dict[str, dict[str, Any]], imports: dict[str, Any] | None, hold: dict[str, Any] | None
) -> dict[str, Any]:
    """Each target: the measured value and whether it is met (None when not measured)."""
    result: dict[str, Any] = {}
    o = scale.get("ours")
    h = scale.get("http")
    f = scale.get("floor")
    if o and h:
        r = ratio(o["cpu_ms_per_request"], h["cpu_ms_per_request"])
        result["cpu_vs_http"] = {"value": r, "met": r <= 0.25}
        r = ratio(o["rss_per_trigger_kb"], h["rss_per_trigger_kb"])
        result["rss_vs_http"] = {"value": r, "met": r <= 0.2}
    if o and f:
        r = ratio(o["cpu_ms_per_request"], f["cpu_ms_per_request"])
        result["cpu_vs_floor"] = {"value": r, "met": r <= 2.0}
    if o:
        result["connections"] = {"value": o["connections"], "met": o["connections"] <= 32}
        result["lateness"] = {"value": o["lateness_mean_s"], "met": o["lateness_mean_s"] <= 1.0}
        errors = o["errors"] + (fan_in["ours"]["errors"] if "ours" in fan_in else 0)
        result["errors"] = {"value": errors, "met": errors == 0}
    if "ours" in fan_in:
        per_execution = fan_in["ours"]["requests_per_interval"] / fan_in["ours"]["executions"]
        result["fan_in"] = {"value": per_execution, "met": per_execution <= 1.0}
    if imports is not None:
        result["imports"] = {"value": imports["delta_ms"], "met": imports["delta_ms"] <= 30.0}
    if hold is not None:
        result["worker_hold"] = {"value": hold["worker_s"], "met": hold["worker_s"] <= 2.0}
    return result


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if value == value else "n/a"


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    cfg = report["config"]
    scale: dict[str, dict[str, Any]] = report["scale"]
    lines = [
        f"Command: `{cfg['command']}`  ",
        f"Machine: {cfg['nproc']} cores (`nproc`), Python {cfg['python']}, {cfg['platform']}  ",
        f"N = {cfg['n']} waits started at once, interval {cfg['interval']:g} s, D = {cfg['duration']:g} s, median of {cfg['repeat']} "
        f"(each kind in a fresh process; TLS on loopback)",
        "",
    ]
    kinds = [k for k in KINDS if k in scale]
    if kinds:
        lines += ["| | " + " | ".join(LABELS[k] for k in kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
        rows = [
            ("CPU ms per request", "cpu_ms_per_request", 3),
            ("of which garbage collection", "gc_ms_per_request", 3),
            ("requests (polls per wait)", None, 0),
            ("peak RSS (MB)", "rss_peak_mb", 0),
            ("RSS per trigger (KB)", "rss_per_trigger_kb", 1),
            ("TCP connections", "connections", 0),
            ("TLS handshakes", "handshakes", 0),
            ("mean lateness (s)", "lateness_mean_s", 3),
            ("max lateness (s)", "lateness_max_s", 3),
            ("errors", "errors", 0),
        ]
        for label, key, digits in rows:
            if key is None:
                cells = [f"{scale[k]['requests']:.0f} ({scale[k]['polls_per_wait']:.1f})" for k in kinds]
            else:
                cells = [fmt(float(scale[k][key]), digits) for k in kinds]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        o = scale.get("ours")
        if o:
            parts = []
            for other, name in (("http", "HTTP provider"), ("floor", "floor")):
                if other in scale:
                    s = scale[other]
                    parts.append(
                        f"ours / {name}: CPU per request {fmt(ratio(o['cpu_ms_per_request'], s['cpu_ms_per_request']))}, "
                        f"RSS per trigger {fmt(ratio(o['rss_per_trigger_kb'], s['rss_per_trigger_kb']))}, "
                        f"connections {fmt(ratio(o['connections'], s['connections']), 3)}, "
                        f"mean lateness {fmt(ratio(o['lateness_mean_s'], s['lateness_mean_s']))}"
                    )
            lines += [f"- {p}" for p in parts] + [""]
    fan_in: dict[str, dict[str, Any]] = report["fan_in"]
    if fan_in:
        any_run = next(iter(fan_in.values()))
        lines += [
            f"Fan-in: {cfg['n']} waits on {any_run['executions']} executions ({cfg['n'] // max(1, any_run['executions'])} per execution) — "
            "what Buddy sees (median requests per interval while all are running):",
            "",
            "| | requests per interval | per execution per interval | errors |",
            "|---|---|---|---|",
        ]
        for k in KINDS:
            if k in fan_in:
                r = fan_in[k]
                per_interval = r["requests_per_interval"]
                lines.append(f"| {LABELS[k]} | {per_interval:.0f} | {per_interval / r['executions']:.2f} | {r['errors']} |")
        lines.append("")
    imports = report.get("imports")
    if imports:
        lines += [
            f"Import cost for a DAG file (median of {imports['rounds']} fresh interpreters): `{imports['statement']}` after "
            f"`{imports['baseline']}` adds **{imports['delta_ms']:.0f} ms** "
            f"({imports['importtime_ms']:.0f} ms under `-X importtime`, "
            f"{imports['modules']} modules; `{imports['baseline']}` alone: {imports['sdk_ms']:.0f} ms). Largest: "
            + ", ".join(f"{t['module']} {t['self_ms']:.1f} ms" for t in imports["top_modules"][:6]),
            "",
        ]
    hold = report.get("worker_hold")
    if hold:
        lines += [
            f"Worker hold of a deferrable `BuddyExecutionSensor` waiting {hold['wait_emulated_s']:.0f} s "
            f"(emulated; {hold['wait_real_s']:.1f} s real, "
            f"dag.test against the emulator): execute() until TaskDeferred {hold['execute_s']:.3f} s "
            f"+ execute_complete {hold['complete_s']:.3f} s "
            f"= **{hold['worker_s']:.3f} s** of worker time (task {hold['task_state']})",
            "",
        ]
    checks = report["targets"]
    if checks:
        lines += ["| target | measured | met |", "|---|---|---|"]
        for key, words in TARGETS.items():
            if key in checks:
                value = checks[key]["value"]
                shown = fmt(float(value), 3) if isinstance(value, float) else str(value)
                lines.append(f"| {words} | {shown} | {'yes' if checks[key]['met'] else '**no**'} |")
        lines.append("")
    return "\n".join(lines)


def profile_summary(path: Path, limit: int = 25) -> str:
    """The top of a cProfile dump, by cumulative time."""
    import io
    import pstats

    stream = io.StringIO()
    pstats.Stats(str(path), stream=stream).sort_stats("tottime").print_stats(limit)
    return stream.getvalue()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="N triggers polling in one asyncio loop: ours vs the HTTP provider vs a floor.")
    parser.add_argument("--n", type=int, default=1000, help="waits started at once (default 1000)")
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds (default 2)")
    parser.add_argument(
        "--duration", "-d", type=float, default=20.0, help="D: seconds from an execution's first poll to its end (default 20)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per kind, reported as medians (default 1)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of ours,http,floor")
    parser.add_argument("--per-execution", type=int, default=10, help="fan-in scenario: waits per execution (default 10)")
    parser.add_argument("--fan-in-kinds", help="kinds run in the fan-in scenario (default: --kinds)")
    parser.add_argument("--skip-scale", action="store_true", help="skip the one-wait-per-execution scenario")
    parser.add_argument("--skip-fan-in", action="store_true", help="skip the fan-in scenario")
    parser.add_argument("--skip-imports", action="store_true", help="skip the import-cost measurement")
    parser.add_argument("--skip-worker", action="store_true", help="skip the worker-hold measurement")
    parser.add_argument("--import-rounds", type=int, default=5)
    parser.add_argument("--worker-wait", type=float, default=600.0, help="emulated seconds the deferrable sensor waits (default 600)")
    parser.add_argument("--worker-speed", type=float, default=40.0, help="emulator speed for that wait (default 40: 600 s in 15 s)")
    parser.add_argument("--profile", action="store_true", help="also write a cProfile of each kind's run and print ours")
    parser.add_argument("--poller", help="run ours with this file as triggers/_poller.py (e.g. an older version, for before/after)")
    parser.add_argument("--json", type=Path, help="write the whole report here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep logs and raw results here (default: a temp dir)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = (set(kinds) | set((args.fan_in_kinds or "").replace(" ", "").split(",")) - {""}) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kinds: {sorted(unknown)}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="buddy-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/triggerer_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    import platform

    report: dict[str, Any] = {
        "config": {
            "command": command.strip(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "n": args.n,
            "interval": args.interval,
            "duration": args.duration,
            "repeat": args.repeat,
            "workdir": str(workdir),
        },
        "scale": {},
        "fan_in": {},
        "runs": {},
    }
    started = time.monotonic()
    server = Server(workdir)
    try:
        if not args.skip_scale:
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            for index in range(args.repeat):
                for kind in kinds:
                    result = run_kind(
                        server,
                        kind,
                        n=args.n,
                        executions=args.n,
                        interval=args.interval,
                        duration=args.duration,
                        workdir=workdir,
                        tag=f"scale{index}",
                        profile=args.profile and index == 0,
                        poller=args.poller,
                    )
                    runs[kind].append(result)
                    print(
                        f"[{time.monotonic() - started:6.0f}s] scale run {index + 1}/{args.repeat} {kind}: "
                        f"{result['cpu_ms_per_request']:.3f} ms/request, {result['rss_per_trigger_kb']:.1f} KB/trigger, "
                        f"{result['connections']} connections, lateness {result['lateness_mean_s']:.3f} s, {result['errors']} errors",
                        file=sys.stderr,
                    )
            report["runs"]["scale"] = runs
            report["scale"] = {k: median_metrics(v) for k, v in runs.items()}
        if not args.skip_fan_in:
            executions = max(1, args.n // args.per_execution)
            fan_in_kinds = [k.strip() for k in args.fan_in_kinds.split(",") if k.strip()] if args.fan_in_kinds else kinds
            for kind in fan_in_kinds:
                result = run_kind(
                    server,
                    kind,
                    n=args.n,
                    executions=executions,
                    interval=args.interval,
                    duration=args.duration,
                    workdir=workdir,
                    tag="fanin",
                    poller=args.poller,
                )
                report["fan_in"][kind] = result
                print(
                    f"[{time.monotonic() - started:6.0f}s] fan-in {kind}: {result['requests_per_interval']:.0f} requests per interval, "
                    f"{result['errors']} errors",
                    file=sys.stderr,
                )
    finally:
        server.stop()
    report["imports"] = None if args.skip_imports else measure_imports(args.import_rounds, workdir)
    report["worker_hold"] = None if args.skip_worker else measure_worker_hold(args.worker_wait, args.worker_speed, workdir)
    report["targets"] = verdicts(report["scale"], report["fan_in"], report["imports"], report["worker_hold"])
    report["markdown"] = render(report)
    print(report["markdown"])
    if args.profile and (workdir / "scale0-ours.prof").exists():
        print(profile_summary(workdir / "scale0-ours.prof"))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
