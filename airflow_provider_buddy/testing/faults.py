"""Fault rules the emulator applies to matching API requests (errors, dropped connections, delays, bad JSON)."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("status", "drop", "delay", "malformed")
MALFORMED_BODY = b'{"id": 1, "stat'


@dataclass
class Fault:
    """
    A fault to inject into matching API requests.

    :param kind: ``status`` (answer ``status`` with ``headers``/``body``), ``drop`` (close the connection
        without answering), ``delay`` (sleep ``delay`` seconds, then answer normally) or ``malformed``
        (answer 200 with a body that is not valid JSON).
    :param method: only requests with this HTTP method (any when None).
    :param path: a regular expression searched in the path after the base path (any when None).
    :param times: how many requests the fault hits; None for every matching one.
    :param status: the status of a ``status`` fault (default 500).
    :param headers: extra response headers of a ``status`` fault, e.g. ``{"Retry-After": "1"}``.
    :param body: the body of a ``status`` fault: str/bytes sent as is, anything else as JSON
        (default ``{"errors": [{"message": "injected <status>"}]}``).
    :param delay: real seconds to sleep before the fault acts (for ``delay``, required and > 0).
    :param when: ``before``: the fault acts before the request is processed (``status``, ``drop`` and
        ``malformed`` faults then never process it; a ``delay`` fault processes it after sleeping), or
        ``after``: the request is processed for real first, then its response is replaced, delayed or lost.
    :param probability: when set, a matching request is hit with this probability (drawn from the
        emulator's seeded random generator).
    """

    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    when: str = "before"
    probability: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.when not in ("before", "after"):
            raise ValueError(f"fault 'when' must be 'before' or 'after', got {self.when!r}")
        if self.times is not None and self.times < 1:
            raise ValueError("fault 'times' must be at least 1 (or None for unlimited)")
        if self.delay < 0:
            raise ValueError("fault 'delay' must not be negative")
        if self.kind == "delay" and self.delay <= 0:
            raise ValueError("a 'delay' fault needs delay > 0")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("fault 'probability' must be between 0 and 1")
        if self.kind == "status" and self.status is None:
            self.status = 500
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status} is not an HTTP status")
        if self.path is not None:
            re.compile(self.path)
        if self.method is not None:
            self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        """True when the fault's method and path filters accept the request."""
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    def response_body(self) -> bytes | Any:
        """The body of a ``status`` fault: bytes to send as is, or a JSON-able object."""
        if self.body is None:
            return {"errors": [{"message": f"injected {self.status}"}]}
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return self.body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """
        Build a fault from its JSON form (the fields of this class).

        :param data: the fault's fields.
        :raises ValueError: on unknown fields or invalid values.
        """
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("a fault needs a 'kind'")
        values = dict(data)
        values["headers"] = {str(k): str(v) for k, v in dict(values.get("headers") or {}).items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fault's JSON form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class FaultBook:
    """
    The emulator's active faults; thread-safe.

    :param seed: seed of the random generator used for faults with a probability.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[tuple[Fault, list[int | None]]] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> None:
        """Activate a fault (after the ones already active)."""
        with self._lock:
            self._rules.append((fault, [fault.times]))

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._rules.clear()

    def active(self) -> list[Fault]:
        """The faults that can still hit."""
        with self._lock:
            return [fault for fault, _ in self._rules]

    def take(self, method: str, path: str) -> Fault | None:
        """Return the first fault hitting this request, counting the hit, or None."""
        with self._lock:
            for index, (fault, remaining) in enumerate(self._rules):
                if not fault.matches(method, path):
                    continue
                if fault.probability is not None and self._random.random() >= fault.probability:
                    continue
                left = remaining[0]
                if left is not None:
                    remaining[0] = left - 1
                    if left - 1 <= 0:
                        del self._rules[index]
                return fault
            return None
