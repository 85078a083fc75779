"""A standalone emulator (``python -m airflow_provider_buddy.testing.emulator``) in a subprocess, for tests that
steer it over HTTP only, as another process would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field

import httpx


def run_cli(*args: str) -> subprocess.Popen[str]:
    """Start the CLI with ``args``; its output is piped, unbuffered."""
    command = [sys.executable, "-m", "airflow_provider_buddy.testing.emulator", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@dataclass
class Standalone:
    """
    A running standalone emulator.

    :param process: the CLI's process.
    :param url: the API URL it printed.
    :param banner: every line it printed before serving (the URL line to the control line).
    """

    process: subprocess.Popen[str]
    url: str
    banner: list[str] = field(default_factory=list)

    @property
    def control(self) -> str:
        """The control endpoints' root."""
        return self.url + "/__emulator__"

    def api(self, token: str) -> httpx.Client:
        """A GoRules client as the provider's hook is one: the emulator's URL plus ``/api``, the bearer token."""
        return httpx.Client(base_url=self.url + "/api", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def stop(self) -> tuple[str, str]:
        """SIGTERM, then the rest of its stdout and stderr."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.communicate(timeout=15)


def start_standalone(*args: str) -> Standalone:
    """Start the CLI on a free port and read its banner (up to the control line)."""
    process = run_cli("--port", "0", *args)
    assert process.stdout is not None
    banner: list[str] = []
    while not banner or not banner[-1].startswith("  control:"):
        line = process.stdout.readline()
        if not line:
            err = process.stderr.read() if process.stderr else ""
            process.kill()
            raise AssertionError(f"the emulator did not start: {''.join(banner)}{err}")
        banner.append(line.rstrip("\n"))
    match = re.search(r"listening on (https?://127\.0\.0\.1:\d+\S*)", banner[0])
    assert match, banner
    return Standalone(process, match.group(1), banner)
