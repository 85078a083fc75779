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

DEFAULT_POINTS = "1000:2:20,5000:10:100,10000:10:100"
"""N:interval:D of each scale point ``make bench`` measures: D is 10 intervals everywhere, so every wait makes 11 polls
and the per-wait costs (start, logging, the event) weigh the same in the per-poll figure at every N."""
HTTP_MAX_N = 1000
"""The HTTP provider's trigger opens a TLS connection per poll; past this N it only measures an overloaded machine."""

# The per-point targets (the triggerer-scale issue): ratios against the floor measured in the same run.
POINT_TARGETS = {
    "cpu_vs_floor": "CPU per poll <= 1.3x the floor (1.5x at N >= 10 000)",
    "lateness": "mean lateness <= 0.5 s",
    "rss": "RSS per waiting task <= 25 KB",
    "connections": "<= 32 connections",
    "errors": "0 errors",
}


def cpu_limit(n: int) -> float:
    return 1.5 if n >= 10_000 else 1.3


def point_verdicts(n: int, scale: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The per-point targets: measured value and whether met."""
    o, f = scale.get("ours"), scale.get("floor")
    result: dict[str, Any] = {}
    if o and f:
        r = ratio(o["cpu_ms_per_request"], f["cpu_ms_per_request"])
        result["cpu_vs_floor"] = {"value": r, "met": r <= cpu_limit(n)}
    if o:
        result["lateness"] = {"value": o["lateness_mean_s"], "met": o["lateness_mean_s"] <= 0.5}
        result["rss"] = {"value": o["rss_per_trigger_kb"], "met": o["rss_per_trigger_kb"] <= 25.0}
        result["connections"] = {"value": o["connections"], "met": o["connections"] <= 32}
        result["errors"] = {"value": o["errors"], "met": o["errors"] == 0}
    return result


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
            f"`{imports['baseline']}` adds **{imports['delta_ms']:.0f} ms** ({imports['importtime_ms']:.0f} ms under `-X importtime`, "
            f"{imports['modules']} modules; `{imports['baseline']}` alone: {imports['sdk_ms']:.0f} ms). Largest: "
            + ", ".join(f"{t['module']} {t['self_ms']:.1f} ms" for t in imports["top_modules"][:6]),
            "",
        ]
    hold = report.get("worker_hold")
    if hold:
        lines += [
            f"Worker hold of a deferrable `BuddyExecutionSensor` waiting {hold['wait_emulated_s']:.0f} s "
            f"(emulated; {hold['wait_real_s']:.1f} s real, dag.test against the emulator): "
            f"execute() until TaskDeferred {hold['execute_s']:.3f} s + execute_complete {hold['complete_s']:.3f} s "
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


def render_points(points: list[dict[str, Any]]) -> str:
    """One row per scale point: ours against the floor measured in the same run, and the targets."""
    lines = [
        "| N | interval / D | ours CPU ms/poll | floor CPU ms/poll | ratio (target) | ours GC ms/poll | floor GC ms/poll | "
        "ours lateness mean / max (s) | floor lateness mean / max (s) | ours RSS/task (KB) | ours connections | ours errors | "
        "ours polls/wait | targets met |",
        "|---" * 14 + "|",
    ]
    for point in points:
        o, f = point["scale"].get("ours"), point["scale"].get("floor")
        if not o or not f:
            continue
        checks = point["targets"]
        missed = [POINT_TARGETS[k] for k, v in checks.items() if not v["met"]]
        lines.append(
            f"| {point['n']} | {point['interval']:g} s / {point['duration']:g} s | "
            f"{o['cpu_ms_per_request']:.3f} | {f['cpu_ms_per_request']:.3f} | "
            f"**{ratio(o['cpu_ms_per_request'], f['cpu_ms_per_request']):.2f}** (<= {cpu_limit(point['n'])}) | "
            f"{o['gc_ms_per_request']:.3f} | {f['gc_ms_per_request']:.3f} | "
            f"{o['lateness_mean_s']:.3f} / {o['lateness_max_s']:.3f} | {f['lateness_mean_s']:.3f} / {f['lateness_max_s']:.3f} | "
            f"{o['rss_per_trigger_kb']:.1f} | {o['connections']:.0f} | {o['errors']} | {o['polls_per_wait']:.1f} | "
            + ("all" if not missed else "**missed: " + "; ".join(missed) + "**")
            + " |"
        )
    return "\n".join(lines) + "\n"


# Where the time goes, by area: the first matching marker in a function's file name (or name) decides.
AREAS = (
    ("GC (garbage collector)", ("<gc>",)),
    ("socket / TLS / epoll system calls", ("_socket.socket", "_ssl._SSLSocket", "select.epoll", "_ssl.", "sslproto.py")),
    ("aiohttp (client, connector, parser)", ("aiohttp/", "multidict/", "yarl/", "propcache/", "aiosignal/", "frozenlist/")),
    ("httpx (Response, Headers, client)", ("httpx/", "httpcore/", "h11/", "anyio/")),
    ("JSON decoding", ("json/", "raw_decode", "json.decoder")),
    ("pydantic validation", ("pydantic", "SchemaValidator")),
    ("tenacity (retry policy)", ("tenacity/",)),
    ("our HTTP core (hooks)", ("airflow_provider_buddy/hooks/",)),
    ("our transport", ("airflow_provider_buddy/triggers/_transport.py",)),
    ("our poller", ("airflow_provider_buddy/triggers/_poller.py",)),
    ("our trigger and wait decision", ("airflow_provider_buddy/",)),
    ("asyncio event loop, tasks, timers", ("asyncio/", "heapq", "_asyncio", "method 'run' of '_contextvars", "contextvars")),
    ("logging / structlog", ("logging/", "structlog/")),
)


def profile_areas(path: Path, requests: int) -> dict[str, Any]:
    """Own time of a cProfile dump grouped by area, in µs per request (profiled: inflated) and shares; plus the top functions."""
    import pstats

    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    top: list[tuple[float, int, str]] = []
    overall = 0.0
    for (filename, line, name), (_, calls, own, _cum, _) in stats.items():
        if name == "<method 'poll' of 'select.epoll' objects>":
            continue  # waiting for the network (idle), not work
        overall += own
        label = f"{filename}:{line}({name})" if filename != "~" else name
        area = next((a for a, markers in AREAS if any(m in label for m in markers)), "other (stdlib, builtins)")
        totals[area] = totals.get(area, 0.0) + own
        short = re.sub(r"^.*/lib/python3\.\d+/(site-packages/)?", "", label).split("/airflow_provider_buddy/")[-1]
        top.append((own, calls, short))
    top.sort(reverse=True)
    return {
        "requests": requests,
        "us_per_request": 1e6 * overall / requests if requests else float("nan"),
        "areas": sorted(((a, 1e6 * t / requests, t / overall if overall else 0.0) for a, t in totals.items()), key=lambda x: -x[1]),
        "top": [(name, calls / requests, 1e6 * own / requests) for own, calls, name in top[:15]],
    }


def render_profile(point: dict[str, Any]) -> str:
    prof = point.get("profile")
    if not prof:
        return ""
    lines = [
        f"Where ours spends its CPU at N = {point['n']} (cProfile of a separate run, own time by area, "
        f"{prof['us_per_request']:.0f} µs per request profiled; cProfile inflates every call, compare shares):",
        "",
        "| area | µs / request (profiled) | share |",
        "|---|---|---|",
    ]
    lines += [f"| {area} | {us:.1f} | {share:.0%} |" for area, us, share in prof["areas"]]
    lines += [
        "",
        "Top functions by own time: " + "; ".join(f"`{name}` {us:.1f} µs ({calls:.2f}/req)" for name, calls, us in prof["top"][:10]),
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="N triggers polling in one asyncio loop: ours vs the HTTP provider vs a floor.")
    parser.add_argument(
        "--points", default=None, help=f"scale points N:interval:D, comma-separated (default {DEFAULT_POINTS}; --n makes it one point)"
    )
    parser.add_argument("--n", type=int, default=None, help="one scale point: waits started at once")
    parser.add_argument("--interval", type=float, default=2.0, help="with --n: poll interval in seconds (default 2)")
    parser.add_argument(
        "--duration", "-d", type=float, default=20.0, help="with --n: D, seconds from an execution's first poll to its end (default 20)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per kind, reported as medians (default 1)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"comma-separated subset of ours,http,floor (http only at points with N <= {HTTP_MAX_N})"
    )
    parser.add_argument("--per-execution", type=int, default=10, help="fan-in scenario: waits per execution (default 10)")
    parser.add_argument("--fan-in-kinds", help="kinds run in the fan-in scenario (default: --kinds)")
    parser.add_argument("--skip-scale", action="store_true", help="skip the one-wait-per-execution scenario")
    parser.add_argument("--skip-fan-in", action="store_true", help="skip the fan-in scenario")
    parser.add_argument("--skip-imports", action="store_true", help="skip the import-cost measurement")
    parser.add_argument("--skip-worker", action="store_true", help="skip the worker-hold measurement")
    parser.add_argument("--import-rounds", type=int, default=5)
    parser.add_argument("--worker-wait", type=float, default=600.0, help="emulated seconds the deferrable sensor waits (default 600)")
    parser.add_argument("--worker-speed", type=float, default=40.0, help="emulator speed for that wait (default 40: 600 s in 15 s)")
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run ours once more per point under cProfile (not the measured run) and print where its time goes "
        "(default: on for the default points, off with --n)",
    )
    parser.add_argument("--poller", help="run ours with this file as triggers/_poller.py (e.g. an older version, for before/after)")
    parser.add_argument("--json", type=Path, help="write the whole report here as JSON")
    parser.add_argument("--workdir", type=Path, help="keep logs and raw results here (default: a temp dir)")
    return parser


def parse_points(args: argparse.Namespace) -> list[tuple[int, float, float]]:
    if args.n is not None:
        return [(args.n, args.interval, args.duration)]
    points = []
    for item in (args.points or DEFAULT_POINTS).split(","):
        n, interval, duration = item.strip().split(":")
        points.append((int(n), float(interval), float(duration)))
    return points


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = (set(kinds) | set((args.fan_in_kinds or "").replace(" ", "").split(",")) - {""}) - set(KINDS)
    if unknown:
        raise SystemExit(f"unknown kinds: {sorted(unknown)}")
    points = parse_points(args)
    if args.profile is None:
        args.profile = args.n is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="buddy-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/triggerer_scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    import platform

    first_n, first_interval, first_duration = points[0]
    report: dict[str, Any] = {
        "config": {
            "command": command.strip(),
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "n": first_n,
            "interval": first_interval,
            "duration": first_duration,
            "points": [{"n": n, "interval": i, "duration": d} for n, i, d in points],
            "repeat": args.repeat,
            "workdir": str(workdir),
        },
        "points": [],
        "scale": {},
        "fan_in": {},
        "runs": {},
    }
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f}s] {text}", file=sys.stderr)

    server = Server(workdir)
    try:
        if not args.skip_scale:
            for n, interval, duration in points:
                point_kinds = [k for k in kinds if k != "http" or n <= HTTP_MAX_N]
                runs: dict[str, list[dict[str, Any]]] = {k: [] for k in point_kinds}
                for index in range(args.repeat):
                    for kind in point_kinds:  # the floor right after ours: the same machine load for both
                        result = run_kind(
                            server,
                            kind,
                            n=n,
                            executions=n,
                            interval=interval,
                            duration=duration,
                            workdir=workdir,
                            tag=f"n{n}-scale{index}",
                            poller=args.poller,
                        )
                        runs[kind].append(result)
                        say(
                            f"N={n} run {index + 1}/{args.repeat} {kind}: {result['cpu_ms_per_request']:.3f} ms/request "
                            f"(GC {result['gc_ms_per_request']:.3f}), {result['rss_per_trigger_kb']:.1f} KB/trigger, "
                            f"{result['connections']} connections, "
                            f"lateness {result['lateness_mean_s']:.3f} s, {result['errors']} errors"
                        )
                scale = {k: median_metrics(v) for k, v in runs.items()}
                point: dict[str, Any] = {
                    "n": n,
                    "interval": interval,
                    "duration": duration,
                    "scale": scale,
                    "targets": point_verdicts(n, scale),
                }
                if args.profile and "ours" in kinds:
                    tag = f"n{n}-profile"
                    profiled = run_kind(
                        server,
                        "ours",
                        n=n,
                        executions=n,
                        interval=interval,
                        duration=duration,
                        workdir=workdir,
                        tag=tag,
                        profile=True,
                        poller=args.poller,
                    )
                    point["profile"] = profile_areas(workdir / f"{tag}-ours.prof", int(profiled["requests"]))
                    say(f"N={n} profiled run of ours: {point['profile']['us_per_request']:.0f} µs/request under cProfile")
                report["points"].append(point)
                report["runs"][f"n{n}"] = runs
            report["scale"] = report["points"][0]["scale"]
        if not args.skip_fan_in:
            executions = max(1, first_n // args.per_execution)
            fan_in_kinds = [k.strip() for k in args.fan_in_kinds.split(",") if k.strip()] if args.fan_in_kinds else kinds
            for kind in fan_in_kinds:
                result = run_kind(
                    server,
                    kind,
                    n=first_n,
                    executions=executions,
                    interval=first_interval,
                    duration=first_duration,
                    workdir=workdir,
                    tag="fanin",
                    poller=args.poller,
                )
                report["fan_in"][kind] = result
                say(f"fan-in {kind}: {result['requests_per_interval']:.0f} requests per interval, {result['errors']} errors")
    finally:
        server.stop()
    report["imports"] = None if args.skip_imports else measure_imports(args.import_rounds, workdir)
    report["worker_hold"] = None if args.skip_worker else measure_worker_hold(args.worker_wait, args.worker_speed, workdir)
    report["targets"] = verdicts(report["scale"], report["fan_in"], report["imports"], report["worker_hold"])
    parts = []
    if report["points"]:
        parts += [
            "Scale: ours against the floor measured in the same run (each kind in a fresh process, medians of "
            f"{args.repeat}; TLS on loopback)",
            "",
            render_points(report["points"]),
        ]
    parts.append(render(report))
    for point in report["points"][1:]:
        parts.append(
            render(
                {
                    **report,
                    "config": {**report["config"], "n": point["n"], "interval": point["interval"], "duration": point["duration"]},
                    "scale": point["scale"],
                    "fan_in": {},
                    "imports": None,
                    "worker_hold": None,
                    "targets": {},
                }
            )
        )
    parts += [render_profile(point) for point in report["points"] if point.get("profile")]
    report["markdown"] = "\n".join(parts)
    print(report["markdown"])
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
