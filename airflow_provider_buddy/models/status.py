"""The status vocabulary both services are read in: what a status means to someone waiting on a run.

Each service maps its own status names onto these groups (:mod:`.buddy_status`, :mod:`.gorules`).
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "StatusGroup",
    "WaitKind",
]


class StatusGroup(str, Enum):
    """What a status means for someone waiting on the execution or run."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    RUNNING = "running"
    WAITING_FOR_PERSON = "waiting_for_person"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """True when the execution or run will not change any more by itself."""
        return self in (StatusGroup.SUCCESS, StatusGroup.FAILURE, StatusGroup.CANCELLED, StatusGroup.SKIPPED)


class WaitKind(str, Enum):
    """What a person is asked for when an execution or run stops."""

    APPROVAL = "approval"
    VARIABLES = "variables"
    VISUAL_TEST = "visual_test"
