"""Kill every process of one e2e deployment once the test process that started it is gone.

``python reaper.py WATCHED_PID MARKER SESSIONS_FILE``: polls WATCHED_PID every half second; when it has exited
(also when pytest was killed, or pytest-timeout ended it with ``os._exit``, so no fixture teardown ran), it
kills the deployment's processes (SIGTERM, then SIGKILL), removes the folders listed in ``folders.txt`` beside
SESSIONS_FILE (the throwaway PostgreSQL data outside the output folder), and exits.

A process belongs to the deployment when its session id is one the harness started (each component and the
emulator start in a new session, whose id is their pid, listed in SESSIONS_FILE; Airflow's workers and task
processes change their process group but keep the session), or when its environment holds
``E2E_HARNESS_ID=MARKER`` (every process the harness starts has it; ``setproctitle`` can hide it, hence both).
Standard library only: it must run even when the test process died half-way through an import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

MARKER_VARIABLE = "E2E_HARNESS_ID"


def sessions(path: str | None) -> set[int]:
    """The session ids listed in the harness's file (one per line)."""
    if not path:
        return set()
    try:
        with open(path) as handle:
            return {int(line) for line in handle if line.strip().isdigit()}
    except OSError:
        return set()


def _session_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[3])  # after the command: state, ppid, pgrp, session
    except (OSError, IndexError, ValueError):
        return None


def is_zombie(pid: int) -> bool:
    """True for a process that has exited and waits to be reaped (or is gone): nothing of it runs any more."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def marked_pids(marker: str, sessions_file: str | None = None) -> list[int]:
    """Pids of the deployment's live processes (never this process, no zombie): in one of its sessions, or carrying
    the marker."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    ours = sessions(sessions_file)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or is_zombie(int(entry)):
            continue
        if ours and _session_of(entry) in ours:
            found.append(int(entry))
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def sweep(marker: str, sessions_file: str | None = None, grace: float = 5.0) -> list[int]:
    """SIGTERM every process of the deployment, SIGKILL what is left after ``grace`` seconds; returns the pids found."""
    pids = marked_pids(marker, sessions_file)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and marked_pids(marker, sessions_file):
        time.sleep(0.2)
    for pid in marked_pids(marker, sessions_file):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: its parent just has not reaped it yet
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return False


def remove_folders(sessions_file: str) -> None:
    """Remove the throwaway folders the harness listed in ``folders.txt`` beside the sessions file (PostgreSQL's data)."""
    import shutil

    listing = os.path.join(os.path.dirname(sessions_file), "folders.txt")
    try:
        with open(listing) as handle:
            folders = [line.strip() for line in handle if line.strip()]
    except OSError:
        return
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    watched, marker, sessions_file = int(argv[1]), argv[2], argv[3]
    while _alive(watched):
        time.sleep(0.5)
    sweep(marker, sessions_file)
    remove_folders(sessions_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
