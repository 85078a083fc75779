"""What every Buddy task (operators, sensor, approval gate) shares: its hook and its pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_buddy.utils.arguments import is_template, non_empty, pipeline_ref

if TYPE_CHECKING:
    from airflow_provider_buddy.hooks.buddy import BuddyHook


class BuddyTargetMixin:
    """
    The hook (built on first use: DAG files import the task modules on every parse) and the pipeline id,
    looked up once by identifier or name when a string was given. The host class sets
    ``buddy_conn_id``, ``project_name``, ``pipeline_id`` and ``workspace``.
    """

    buddy_conn_id: str
    project_name: str
    pipeline_id: Any
    workspace: str | None
    log: Any
    _hook: BuddyHook | None = None
    _resolved_pipeline_id: int | None = None

    def set_target(self, project_name: str, pipeline_id: int | str, workspace: str | None, buddy_conn_id: str) -> None:
        """Store what the task acts on, checking it now (a template is checked after rendering)."""
        self.project_name = project_name
        self.pipeline_id = pipeline_id
        self.workspace = workspace
        self.buddy_conn_id = buddy_conn_id
        non_empty(project_name, "project_name")
        non_empty(buddy_conn_id, "buddy_conn_id")
        if not is_template(pipeline_id):
            pipeline_ref(pipeline_id)
        if workspace is not None:
            non_empty(workspace, "workspace")

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
