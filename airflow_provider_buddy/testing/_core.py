"""What both emulated services share: one lock, one clock, one token and one API URL; the API error; paging."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TypeVar

from airflow_provider_buddy.testing.clock import Clock

T = TypeVar("T")


class ApiError(Exception):
    """
    An API error; each service answers it in its own error form.

    :param status: the HTTP status.
    :param message: the error message.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Core:
    """
    The emulator's shared ground: both services' states take :attr:`lock` and read :attr:`clock`.

    :param token: the only accepted token (both services accept the same one).
    :param speed: emulated seconds per real second.
    """

    def __init__(self, token: str, speed: float = 1.0) -> None:
        self.lock = threading.RLock()
        self.clock = Clock(speed)
        self.token = token
        self.api_base = ""
        """The API's root URL (scheme, host, port and base path), set when the server starts."""

    def now(self) -> float:
        """The emulated time, in Unix seconds."""
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward."""
        with self.lock:
            self.clock.advance(seconds)

    def set_speed(self, speed: float) -> None:
        """Run the emulated clock at ``speed`` from now on (0 pauses it)."""
        with self.lock:
            self.clock.speed = speed


def page_of(items: Sequence[T], page: int, per_page: int) -> list[T]:
    """Page ``page`` (from 1) of ``items``, ``per_page`` items a page."""
    start = (page - 1) * per_page
    return list(items[start : start + per_page])
