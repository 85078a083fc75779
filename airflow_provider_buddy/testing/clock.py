"""The emulated clock both services run on, and the way their APIs show a moment."""

from __future__ import annotations

import time
from datetime import datetime, timezone


class Clock:
    """
    The emulated clock: starts at the real time and runs ``speed`` emulated seconds per real second.

    :param speed: emulated seconds per real second (0 freezes it; only :meth:`advance` moves it then).
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed < 0:
            raise ValueError("speed must not be negative")
        self._speed = speed
        self._origin = time.time()
        self._monotonic = time.monotonic()
        self._offset = 0.0

    @property
    def speed(self) -> float:
        """Emulated seconds per real second."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        """Run at ``value`` from now on (0 pauses the clock); the emulated time so far is kept."""
        if value < 0:
            raise ValueError("speed must not be negative")
        self._origin = self.now()
        self._monotonic = time.monotonic()
        self._offset = 0.0
        self._speed = value

    def now(self) -> float:
        """The emulated time, in Unix seconds."""
        return self._origin + (time.monotonic() - self._monotonic) * self._speed + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


def iso(moment: float | None) -> str | None:
    """Unix seconds as both APIs show them (``2025-10-08T07:01:42.029Z``: UTC, milliseconds); None stays None."""
    if moment is None:
        return None
    value = datetime.fromtimestamp(moment, tz=timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
