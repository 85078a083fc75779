"""Shared pieces of the reliability suite: the soak flag, the figures printed at the end of the run."""

from __future__ import annotations

import os
from typing import Any

import pytest

SOAK = os.environ.get("BUDDY_SOAK", "") not in ("", "0", "false", "False")
"""``BUDDY_SOAK=1`` (``make soak``) scales the soak and the property tests up."""

REPORTS: list[tuple[str, list[str]]] = []
"""Figures the tests want shown after the run (title, lines)."""


def scaled(in_suite: int, soak: int) -> int:
    """A count for this run: the in-suite value, or the soak value under ``BUDDY_SOAK=1``."""
    return soak if SOAK else in_suite


def report(title: str, lines: list[str]) -> None:
    """Print figures now (seen with ``-s``) and again in the terminal summary (always seen)."""
    REPORTS.append((title, lines))
    print(f"\n{title}\n" + "\n".join(lines))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for title, lines in REPORTS:
        terminalreporter.write_sep("-", title)
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def soak_scale() -> bool:
    return SOAK
