"""A seeded fault schedule for the emulator, decided per request, with an exact ledger of what was injected.

The emulator applies the first active :class:`Fault` whose ``matches()`` accepts a request. Here the first
rule (:class:`Dice`) never applies itself: it rolls, for every API request, which fault (if any) hits it and
the :class:`ChaosFault` rules then accept exactly that request. The roll for the ``n``-th request to one
method and path is drawn from ``Random(f"{seed}:{method}:{path}:{n}")``, so the same request gets the
same fault in every run whatever the interleaving of concurrent waits; 5xx bursts hit the next few requests
after the one that started them, whatever they are.

Every decision is kept (one per API request, in the order the emulator recorded them), so a test can tell
for each recorded request whether Buddy processed it (no fault, or a fault acting ``after`` processing).

The GoRules soak uses the same schedule: its deploy POSTs create runs as Buddy's run POSTs do (with more of the
faults that act after processing), its cancel POSTs change a run as Buddy's PATCHes do (the PATCH rates).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_buddy.testing import BuddyEmulator, Fault, RecordedRequest

RUN_POST = "POST-run"
DEPLOY_POST = "POST-deploy"
"""GoRules ``POST .../releases/deploy``: creates a run."""
CANCEL_POST = "POST-cancel"
"""GoRules ``POST .../runs/{id}/cancel``: changes a run."""


@dataclass(frozen=True)
class Kind:
    """
    One kind of fault the schedule injects.

    :param label: the name the totals use.
    :param processed: whether the emulator processed the request for real before the fault acted.
    """

    label: str
    processed: bool


RATE_LIMITED = Kind("429 with Retry-After", processed=False)
BURST = Kind("5xx burst", processed=False)
SERVER_AFTER = Kind("502 after processing", processed=True)
DROP_BEFORE = Kind("dropped connection", processed=False)
DROP_AFTER = Kind("dropped connection after processing", processed=True)
TIMEOUT = Kind("timeout (answer lost)", processed=True)
SLOW = Kind("slow response", processed=True)
MALFORMED = Kind("malformed body", processed=False)
MALFORMED_AFTER = Kind("malformed body after processing", processed=True)
KINDS = (RATE_LIMITED, BURST, SERVER_AFTER, DROP_BEFORE, DROP_AFTER, TIMEOUT, SLOW, MALFORMED, MALFORMED_AFTER)

# Probability per request of each kind (bursts: of starting one), by request family. Run POSTs and PATCHes
# are rare, so they get higher rates: each of their kinds must be hit often enough to mean something.
RATES: dict[str, dict[Kind, float]] = {
    "GET": {
        RATE_LIMITED: 0.03,
        BURST: 0.008,
        SERVER_AFTER: 0.01,
        DROP_BEFORE: 0.02,
        DROP_AFTER: 0.01,
        TIMEOUT: 0.012,
        SLOW: 0.04,
        MALFORMED: 0.02,
        MALFORMED_AFTER: 0.01,
    },
    RUN_POST: {
        RATE_LIMITED: 0.05,
        BURST: 0.02,
        SERVER_AFTER: 0.06,
        DROP_BEFORE: 0.04,
        DROP_AFTER: 0.06,
        TIMEOUT: 0.08,
        SLOW: 0.05,
        MALFORMED: 0.03,
        MALFORMED_AFTER: 0.05,
    },
    "PATCH": {
        RATE_LIMITED: 0.04,
        BURST: 0.01,
        SERVER_AFTER: 0.04,
        DROP_BEFORE: 0.04,
        DROP_AFTER: 0.04,
        TIMEOUT: 0.04,
        SLOW: 0.04,
        MALFORMED: 0.02,
        MALFORMED_AFTER: 0.04,
    },
}
# GoRules deploy POSTs are rarer still (a few per DAG run), and the faults that act after the BRMS created the run
# are the ones the operator's search for a lost answer must survive: more of those.
RATES[DEPLOY_POST] = {
    RATE_LIMITED: 0.03,
    BURST: 0.03,
    SERVER_AFTER: 0.10,
    DROP_BEFORE: 0.03,
    DROP_AFTER: 0.10,
    TIMEOUT: 0.10,
    SLOW: 0.03,
    MALFORMED: 0.03,
    MALFORMED_AFTER: 0.10,
}
RATES[CANCEL_POST] = dict(RATES["PATCH"])
BURST_STATUSES = (500, 502, 503, 504)
BURST_LENGTH = (3, 10)
RETRY_AFTER = ("0", "1")
SLOW_DELAYS = (0.1, 0.3, 0.6)


def family(method: str, path: str) -> str:
    """Which rate table a request uses."""
    if method == "POST" and path.endswith("/executions"):
        return RUN_POST
    if method == "POST" and path.endswith("/releases/deploy"):
        return DEPLOY_POST
    if method == "POST" and path.endswith("/cancel"):
        return CANCEL_POST
    return method if method in RATES else "GET"


@dataclass
class ChaosFault(Fault):
    """An emulator fault that hits exactly the requests the :class:`Dice` chose for it."""

    label: str = ""
    dice: Any = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        return self.dice is not None and self.dice.current is self


@dataclass
class Dice(Fault):
    """The first rule: rolls the fault of each request, never applies itself."""

    chaos: Any = field(default=None, repr=False, compare=False)

    def matches(self, method: str, path: str) -> bool:
        self.current = self.chaos.roll(method.upper(), path)
        return False


class Chaos:
    """
    The seeded schedule and its ledger.

    :param seed: the schedule's seed.
    :param timeout: the clients' per-request timeout; "timeout" faults answer later than this.
    """

    def __init__(self, seed: int, timeout: float) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._burst_left = 0
        self._burst_fault: ChaosFault | None = None
        self.decisions: list[tuple[str, str, Kind | None]] = []
        self.dice = Dice(kind="status", status=599, times=None, chaos=self)
        self.dice.current = None
        self._faults: dict[Kind, list[ChaosFault]] = {}

        def make(what: Kind, **fields: Any) -> None:
            self._faults.setdefault(what, []).append(ChaosFault(times=None, label=what.label, dice=self.dice, **fields))

        for value in RETRY_AFTER:
            make(RATE_LIMITED, kind="status", status=429, headers={"Retry-After": value})
        for status in BURST_STATUSES:
            make(BURST, kind="status", status=status)
        make(SERVER_AFTER, kind="status", status=502, when="after")
        make(DROP_BEFORE, kind="drop")
        make(DROP_AFTER, kind="drop", when="after")
        make(TIMEOUT, kind="delay", delay=timeout + 0.6, when="after")
        for delay in SLOW_DELAYS:
            make(SLOW, kind="delay", delay=delay)
        make(MALFORMED, kind="malformed")
        make(MALFORMED_AFTER, kind="malformed", when="after")
        self._kind_of = {id(f): kind for kind, faults in self._faults.items() for f in faults}

    def install(self, emulator: BuddyEmulator) -> None:
        """Activate the schedule on ``emulator`` (the dice first, then one rule per fault variant)."""
        emulator.add_fault(self.dice)
        for faults in self._faults.values():
            for fault in faults:
                emulator.add_fault(fault)

    def roll(self, method: str, path: str) -> ChaosFault | None:
        """The fault of this request (called by the emulator, under its fault lock)."""
        with self._lock:
            n = self._seen[(method, path)]
            self._seen[(method, path)] = n + 1
            if self._burst_left > 0:
                self._burst_left -= 1
                chosen: ChaosFault | None = self._burst_fault
            else:
                rng = random.Random(f"{self.seed}:{method}:{path}:{n}")
                chosen = None
                draw = rng.random()
                for kind, rate in RATES[family(method, path)].items():
                    if draw < rate:
                        chosen = rng.choice(self._faults[kind])
                        if kind is BURST:
                            self._burst_fault = chosen
                            self._burst_left = rng.randint(*BURST_LENGTH) - 1
                        break
                    draw -= rate
            self.decisions.append((method, path, self._kind_of[id(chosen)] if chosen is not None else None))
            return chosen

    # ---- reading the ledger ------------------------------------------------------------------------
    def pair(self, requests: Sequence[RecordedRequest]) -> list[tuple[RecordedRequest, Kind | None]]:
        """Each recorded API request with the fault it got (the emulator records, then rolls, in one step of its
        event loop; a request that arrived while this reads may be recorded and not yet rolled: it is left out)."""
        with self._lock:
            decisions = list(self.decisions)
        assert 0 <= len(requests) - len(decisions) <= 1, (len(decisions), len(requests))
        requests = requests[: len(decisions)]
        for (method, path, _), request in zip(decisions, requests, strict=True):
            assert (method, path) == (request.method, request.path)
        return [(request, kind) for request, (_, _, kind) in zip(requests, decisions, strict=True)]

    def injected(self) -> Counter[tuple[str, str]]:
        """How many faults of each kind hit each request family: ``{(kind label, family): n}``."""
        with self._lock:
            return Counter((kind.label, family(method, path)) for method, path, kind in self.decisions if kind is not None)


def processed(kind: Kind | None) -> bool:
    """Whether a request with this fault reached Buddy's logic."""
    return kind is None or kind.processed
