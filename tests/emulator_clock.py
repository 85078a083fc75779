"""Holding the emulator's clock still until a waiter has looked, so "it was still going" never depends on machine speed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from airflow_provider_buddy.testing import BuddyEmulator


@contextmanager
def clock_held_until_answered(emulator: BuddyEmulator, path_regex: str, method: str = "GET") -> Iterator[None]:
    """
    Pause the emulated clock until the emulator has answered a request matching ``method`` and ``path_regex``.

    Runs started meanwhile stay where they start, so that first answer always shows them still going;
    then the clock runs again at its old speed. Used where a test asserts that a task deferred: on a
    slow machine a short run could otherwise finish before the task's first look.
    """
    speed = emulator.speed
    emulator.speed = 0
    done = threading.Event()

    def resume_when_answered() -> None:
        while not done.wait(0.005):
            if any(r.status is not None for r in emulator.requests_to(method, path_regex)):
                break
        emulator.speed = speed

    watcher = threading.Thread(target=resume_when_answered, name="clock-held-until-answered", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
