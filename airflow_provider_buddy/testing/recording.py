"""The emulator's record of the API requests it received."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    """
    One API request the emulator received.

    :param method: the HTTP method.
    :param path: the path after the base path, without the query string.
    :param query: the query parameters (the last value of repeated ones).
    :param headers: the request headers, with lower-case names.
    :param json: the parsed JSON body, or None when there was none (or it was not JSON).
    :param status: the status answered; None while in flight and for dropped connections.
    :param fault: the kind of the fault applied, or None.
    :param time: when the request arrived (Unix seconds, real time).
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    status: int | None = None
    fault: str | None = None
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """The request's JSON form."""
        return asdict(self)


class RequestLog:
    """Thread-safe list of recorded requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def add(self, request: RecordedRequest) -> RecordedRequest:
        """Record a request (its status and fault may be filled in later)."""
        with self._lock:
            self._items.append(request)
        return request

    def all(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._items)

    def matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path the regular expression is found in."""
        pattern = re.compile(path_regex)
        return [r for r in self.all() if r.method == method.upper() and pattern.search(r.path)]

    def clear(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._items.clear()

    def count_since(self, since: float) -> int:
        """How many requests arrived at or after ``since`` (Unix seconds)."""
        with self._lock:
            return sum(1 for r in self._items if r.time >= since)
