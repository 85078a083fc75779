"""
Run the Buddy.Works (and GoRules BRMS) API emulator standalone, until SIGINT or SIGTERM.

``python -m airflow_provider_buddy.testing.emulator --port 8765 [--host 127.0.0.1] [--scenario FILE]
[--token T] [--workspace W] [--speed X] [--base-path /api] [--seed N]``

It prints the API URL, the workspace, the token, the GoRules projects it serves (with the ids of their
environments and releases) and, last, the control URL; then it serves. The GoRules API is at the same URL
(a ``gorules`` connection's host is the API URL, its password the token). Another process can steer it
through the ``/__emulator__/`` control endpoints (see :mod:`airflow_provider_buddy.testing.control`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from airflow_provider_buddy.testing.scenario import ScenarioError
from airflow_provider_buddy.testing.server import BuddyEmulator


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_buddy.testing.emulator",
        description="Serve an emulated Buddy.Works REST API (and GoRules BRMS API) on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind, 0 for a free one (default 8765)")
    parser.add_argument("--scenario", help="JSON scenario file with Buddy projects and pipelines and GoRules projects")
    parser.add_argument("--token", help="the accepted token (default: the scenario's, else test-token)")
    parser.add_argument("--workspace", help="the workspace name (default: the scenario's, else acme)")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second (default 1)")
    parser.add_argument("--base-path", default="", help='API path prefix, e.g. "/api" (on-premises form)')
    parser.add_argument("--seed", type=int, help="seed for random faults")
    parser.add_argument("--ssl-certfile", help="certificate file, to serve HTTPS")
    parser.add_argument("--ssl-keyfile", help="key file of the certificate")
    return parser


def gorules_lines(projects: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the CLI prints about the GoRules projects it serves: each one's id, its environments' and releases' ids."""
    lines = []
    for project in projects:
        lines.append(f"  gorules project {project['name']!r}: {project['id']}")
        for env in project["environments"]:
            review = " (review required)" if env["review"] else ""
            lines.append(f"    environment {env['key']}: {env['id']}{review}")
        for release in project["releases"]:
            lines.append(f"    release {release['name']} {release['version']}: {release['id']}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        emulator = BuddyEmulator(
            workspace=args.workspace,
            token=args.token,
            speed=args.speed,
            base_path=args.base_path,
            ssl_certfile=args.ssl_certfile,
            ssl_keyfile=args.ssl_keyfile,
            scenario=args.scenario,
            host=args.host,
            port=args.port,
            seed=args.seed,
        )
        emulator.start()
    except (ScenarioError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"Buddy.Works API emulator listening on {emulator.url}", flush=True)
    print(f"  workspace: {emulator.workspace}", flush=True)
    print(f"  token:     {emulator.token}", flush=True)
    for line in gorules_lines(emulator.gorules_projects()):
        print(line, flush=True)
    print(f"  control:   {emulator.url}/__emulator__/", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.stop()
    print("Buddy.Works API emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
