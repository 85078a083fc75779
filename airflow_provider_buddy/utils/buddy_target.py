"""What every Buddy task (operators, sensor, approval gate) shares: its hook and its pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_buddy.utils.arguments import ArgumentChecks, Check, non_empty, optional, pipeline_ref, positive_int

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.buddy import BuddyHook

TARGET_CHECKS: Mapping[str, Check] = {"project_name": non_empty, "pipeline_id": pipeline_ref, "workspace": optional(non_empty)}
"""The checks of what every Buddy task acts on."""
EXECUTION_CHECKS: Mapping[str, Check] = {**TARGET_CHECKS, "execution_id": positive_int}
"""The checks of a task that acts on one execution."""


class BuddyTargetMixin(ArgumentChecks):
    """
    The hook (built on first use: DAG files import the task modules on every parse) and the pipeline id,
    looked up once by identifier or name when a string was given. The host class sets
    ``buddy_conn_id``, ``project_name``, ``pipeline_id`` and ``workspace``.

    ``project_name``, ``pipeline_id`` and ``workspace`` may be given as templates or values Airflow resolves
    when the task runs (``task.output``, a TaskFlow result): those are checked then (see :class:`ArgumentChecks`).
    """

    argument_checks: ClassVar[Mapping[str, Check]] = TARGET_CHECKS
    buddy_conn_id: str
    project_name: str
    pipeline_id: Any
    workspace: str | None
    log: Any
    _hook: BuddyHook | None = None
    _resolved_pipeline_id: int | None = None

    def set_target(self, project_name: str, pipeline_id: int | str, workspace: str | None, buddy_conn_id: str) -> None:
        """Store what the task acts on, checking what is known now (the rest is checked when the task runs)."""
        self.project_name = project_name
        self.pipeline_id = pipeline_id
        self.workspace = workspace
        self.buddy_conn_id = buddy_conn_id
        self.check_given_arguments(*TARGET_CHECKS)
        non_empty(buddy_conn_id, "buddy_conn_id")

    @property
    def hook(self) -> BuddyHook:
        """The Buddy hook."""
        if self._hook is None:
            from airflow_provider_buddy.hooks.buddy import BuddyHook

            self._hook = BuddyHook(self.buddy_conn_id)
        return self._hook

    def resolve_pipeline_id(self) -> int:
        """The numeric pipeline id (one ``find_pipeline`` call when an identifier or name was given)."""
        if self._resolved_pipeline_id is None:
            ref = pipeline_ref(self.pipeline_id)
            if not isinstance(ref, int):
                pipeline = self.hook.find_pipeline(self.project_name, ref, workspace=self.workspace)
                named = f" ({pipeline.name})" if pipeline.name and pipeline.name != ref else ""
                self.log.info("Pipeline %r is pipeline %s%s", ref, pipeline.id, named)
                ref = pipeline.id
            self._resolved_pipeline_id = ref
        return self._resolved_pipeline_id
