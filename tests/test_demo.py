"""`make demo` itself: the release DAG end to end in real Airflow (api-server + dags test) against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_the_release_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_buddy.demo", "--root", str(ROOT)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-2000:]
    assert "DEMO PASSED" in out
    assert "Reviewer answered 'Approve' through Airflow's REST API (HTTP 200)" in out
    assert "-> awaiting_input" in out and "Airflow  approval requested: Approve" in out
    for task_id in ("clear_cache", "build", "deploy_vars", "staging", "approve", "production"):
        assert f"  {task_id:<12} success" in out
    assert out.count("-> run (HTTP 200)") == 2 and out.count("-> APPLY (HTTP 200)") == 1
