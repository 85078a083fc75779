"""The Python API of the emulated Buddy.Works workspace, mixed into :class:`BuddyEmulator`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_buddy.testing.buddy.specs import ActionSpec, PipelineSpec, VariableSpec, pipeline_spec
from airflow_provider_buddy.testing.buddy.state import BuddyState, configure_state


def _variables(values: Sequence[Mapping[str, Any]] | Mapping[str, str] | None) -> list[VariableSpec] | None:
    if values is None:
        return None
    if isinstance(values, Mapping):
        return [VariableSpec(key=k, value=v) for k, v in values.items()]
    return [VariableSpec.model_validate(dict(v)) for v in values]


class BuddyEmulatorMixin:
    """Buddy.Works projects, pipelines and executions on the emulator (its clock, lock and token are shared)."""

    _buddy: BuddyState

    # --- settings ----------------------------------------------------------------------------------------

    @property
    def workspace(self) -> str:
        """The workspace's name."""
        return self._buddy.workspace

    @property
    def api_disabled(self) -> bool:
        """When True every Buddy API call answers 403 "API is disabled in this workspace"."""
        return self._buddy.api_disabled

    @api_disabled.setter
    def api_disabled(self, value: bool) -> None:
        self._buddy.api_disabled = value

    @property
    def scopes(self) -> set[str]:
        """The token's scopes (default: WORKSPACE, EXECUTION_INFO, EXECUTION_RUN, EXECUTION_MANAGE)."""
        return set(self._buddy.scopes)

    @scopes.setter
    def scopes(self, value: Iterable[str]) -> None:
        self._buddy.scopes = set(value)

    def configure_buddy(
        self,
        *,
        identifiers_missing: str | None = None,
        identifiers_see_hidden: bool | None = None,
        delayed_status: str | None = None,
        settable_variables_operation: str | None = None,
    ) -> None:
        """
        Choose how the emulated Buddy plays what its docs leave open (None: unchanged).

        :param identifiers_missing: how ``GET /workspaces/{ws}/identifiers`` answers an unknown identifier: ``"404"``
            (default) or ``"empty"`` (200 without the id).
        :param identifiers_see_hidden: whether that lookup finds pipelines hidden by their visibility settings (default
            True).
        :param delayed_status: what a run scheduled by ``delay_until`` shows until it starts: ``"ENQUEUED"`` (default)
            or ``"INITIAL"``.
        :param settable_variables_operation: the operation that answers WAITING_FOR_SETTABLE_VARIABLES:
            ``"SET_VARIABLES"`` (default) or ``"APPLY_VARIABLES"``.
        :raises ValueError: for a value outside those.
        """
        configure_state(
            self._buddy,
            {
                "identifiers_missing": identifiers_missing,
                "identifiers_see_hidden": identifiers_see_hidden,
                "delayed_status": delayed_status,
                "settable_variables_operation": settable_variables_operation,
            },
        )

    # --- pipelines ---------------------------------------------------------------------------------------

    def add_pipeline(
        self,
        project: str,
        pipeline_id: int,
        identifier: str,
        name: str = "",
        actions: Sequence[Mapping[str, Any] | ActionSpec] | None = None,
        *,
        outcome: str = "SUCCESSFUL",
        fail_action: int | None = None,
        error_message: str | None = None,
        wait_shown_on: str = "execution",
        enqueued_for: float = 0.0,
        retry_outcome: str = "SUCCESSFUL",
        disabled: bool = False,
        disabled_reason: str | None = None,
        refs: Sequence[str] | None = None,
        hidden: bool = False,
    ) -> PipelineSpec:
        """
        Create (or replace) a pipeline; see :mod:`airflow_provider_buddy.testing.scenario` for the fields.

        Without ``actions`` the pipeline gets one 1-second BUILD action (id 1, "Execute").

        :raises ScenarioError: when the definition is invalid.
        """
        listed = [{"id": 1, "name": "Execute", "type": "BUILD"}] if actions is None else actions
        data: dict[str, Any] = {
            "id": pipeline_id,
            "identifier": identifier,
            "name": name,
            "actions": [a.model_dump() if isinstance(a, ActionSpec) else dict(a) for a in listed],
            "outcome": outcome,
            "fail_action": fail_action,
            "error_message": error_message,
            "wait_shown_on": wait_shown_on,
            "enqueued_for": enqueued_for,
            "retry_outcome": retry_outcome,
            "disabled": disabled,
            "disabled_reason": disabled_reason,
            "hidden": hidden,
        }
        if refs is not None:
            data["refs"] = list(refs)
        spec = pipeline_spec(data)
        self._buddy.add_pipeline(project, spec)
        return spec

    # --- executions ------------------------------------------------------------------------------------

    def executions(self, project: str, pipeline_id: int) -> list[dict[str, Any]]:
        """The pipeline's executions as the API shows them, newest first."""
        return self._buddy.all_executions(project, pipeline_id)

    def execution(self, project: str, pipeline_id: int, execution_id: int) -> dict[str, Any]:
        """One execution as the API shows it."""
        return self._buddy.execution_view(self._buddy.workspace, project, pipeline_id, execution_id)

    def start_execution(self, project: str, pipeline_id: int, **run_body: Any) -> dict[str, Any]:
        """Start a run as someone in Buddy's UI would (``triggered_on`` "CLICK"); kwargs as in the run body."""
        return self._buddy.start_in_buddy(project, pipeline_id, run_body)

    def approve_in_buddy(
        self,
        project: str,
        pipeline_id: int,
        execution_id: int,
        variables: Sequence[Mapping[str, Any]] | Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """
        A person approves the waiting action in Buddy's UI.

        :param variables: for a "pass arguments" wait, ``[{"key", "value"}]`` or ``{key: value}``;
            None keeps the defaults.
        :raises ApiError: when the execution is not waiting.
        """
        return self._buddy.approve_in_buddy(project, pipeline_id, execution_id, _variables(variables))

    def cache_clears(self, project: str, pipeline_id: int) -> int:
        """How many times the pipeline's cache was cleared through the API."""
        return self._buddy.cache_clears(project, pipeline_id)
