"""A small run of ``benchmarks/triggerer_scale.py`` (N = 20): the report is complete and nothing failed.

Timings are not asserted (they are noisy); ``make bench`` is the measurement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "triggerer_scale.py"
N = 20
KIND_METRICS = {
    "cpu_ms_per_request",
    "gc_ms_per_request",
    "requests",
    "polls_per_wait",
    "rss_peak_mb",
    "rss_per_trigger_kb",
    "connections",
    "handshakes",
    "lateness_mean_s",
    "lateness_max_s",
    "errors",
    "error_samples",
    "requests_per_interval",
    "repeats",
}


def test_small_run_reports_every_kind_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    command = [
        sys.executable,
        str(SCRIPT),
        "--n",
        str(N),
        "--interval",
        "0.2",
        "--duration",
        "1",
        "--fan-in-kinds",
        "ours",
        "--import-rounds",
        "1",
        "--skip-worker",
        "--json",
        str(out),
        "--workdir",
        str(tmp_path / "work"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["config"]["n"] == N and report["config"]["nproc"] >= 1
    assert set(report["scale"]) == {"ours", "http", "floor"}
    for kind, metrics in report["scale"].items():
        assert set(metrics) >= KIND_METRICS, kind
        assert metrics["errors"] == 0, (kind, metrics["error_samples"])
        assert metrics["requests"] >= N and metrics["connections"] >= 1 and metrics["handshakes"] >= 1
        assert metrics["lateness_mean_s"] >= 0
    assert report["scale"]["http"]["connections"] == report["scale"]["http"]["requests"]  # a new TLS connection per poll
    assert report["scale"]["ours"]["connections"] <= 32

    fan_in = report["fan_in"]["ours"]
    assert fan_in["errors"] == 0 and fan_in["executions"] == N // 10
    assert fan_in["polls_per_wait"] < 3  # ten waits share one read per interval (unshared: one per wait per interval)

    assert report["imports"]["delta_ms"] > 0 and report["imports"]["modules"] > 0
    assert report["worker_hold"] is None
    assert {"cpu_vs_http", "cpu_vs_floor", "rss_vs_http", "connections", "lateness", "errors", "fan_in", "imports"} <= set(
        report["targets"]
    )
    assert "| CPU ms per request |" in report["markdown"] and "Fan-in" in report["markdown"]
