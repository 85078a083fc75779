"""
Run the Buddy.Works API emulator standalone, until SIGINT or SIGTERM.

``python -m airflow_provider_buddy.testing.emulator --port 8765 [--host 127.0.0.1] [--scenario FILE]
[--token T] [--workspace W] [--speed X] [--base-path /api] [--seed N]``

It prints the API URL, the workspace and the token, then serves; another process can steer it through
the ``/__emulator__/`` control endpoints (see :mod:`airflow_provider_buddy.testing.control`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_buddy.testing.scenario import ScenarioError
from airflow_provider_buddy.testing.server import BuddyEmulator


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_buddy.testing.emulator",
        description="Serve an emulated Buddy.Works REST API on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind, 0 for a free one (default 8765)")
    parser.add_argument("--scenario", help="JSON scenario file with projects and pipelines")
    parser.add_argument("--token", help="the accepted token (default: the scenario's, else test-token)")
    parser.add_argument("--workspace", help="the workspace name (default: the scenario's, else acme)")
    parser.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second (default 1)")
    parser.add_argument("--base-path", default="", help='API path prefix, e.g. "/api" (on-premises form)')
    parser.add_argument("--seed", type=int, help="seed for random faults")
    parser.add_argument("--ssl-certfile", help="certificate file, to serve HTTPS")
    parser.add_argument("--ssl-keyfile", help="key file of the certificate")
    return parser


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
