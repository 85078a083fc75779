"""A run request's body, validated (``POST .../executions``), and the variables of an approval."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_buddy.testing._core import ApiError
from airflow_provider_buddy.testing.buddy.specs import PipelineSpec, VariableSpec

PRIORITIES = ("LOW", "NORMAL", "HIGH")


@dataclass
class RunOptions:
    """
    The validated body of a run request.

    :param comment: the run's comment.
    :param priority: LOW, NORMAL or HIGH.
    :param refresh: deploy from scratch.
    :param clear_cache: clear the cache before running.
    :param branch: the branch to run (at most one of branch, tag and pull_request).
    :param tag: the tag to run.
    :param pull_request: the pull request to run.
    :param to_revision: the revision to deploy.
    :param from_revision: the revision deployed before.
    :param variables: variables passed to the run.
    :param actions_to_run: ids of the only actions to run, or None for all.
    :param delay_until: when the run may start (Unix seconds), or None.
    :param environment: the environment to run in.
    :param package_version: the package version ("name:version").
    """

    comment: str = ""
    priority: str = "NORMAL"
    refresh: bool = False
    clear_cache: bool = False
    branch: str | None = None
    tag: str | None = None
    pull_request: str | None = None
    to_revision: str | None = None
    from_revision: str | None = None
    variables: list[VariableSpec] = field(default_factory=list)
    actions_to_run: list[int] | None = None
    delay_until: float | None = None
    environment: str | None = None
    package_version: str | None = None


def _ref_name(body: dict[str, Any], key: str, field_name: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(field_name), str) or not value[field_name]:
        raise ApiError(400, f'{key} must be an object with a non-empty "{field_name}" string')
    name: str = value[field_name]
    return name


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value


def parse_variables(value: Any, key: str = "variables") -> list[VariableSpec]:
    """Validate a list of ``{"key", "value", "encrypted"}`` objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{key} must be a list")
    result = []
    for index, item in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise ApiError(400, f"{where} must be an object")
        name = item.get("key")
        if not isinstance(name, str) or not name:
            raise ApiError(400, f"{where}.key must be a non-empty string")
        text = item.get("value", "")
        if not isinstance(text, str):
            raise ApiError(400, f"{where}.value must be a string")
        encrypted = item.get("encrypted", False)
        if not isinstance(encrypted, bool):
            raise ApiError(400, f"{where}.encrypted must be a boolean")
        result.append(VariableSpec(key=name, value=text, encrypted=encrypted))
    return result


def parse_datetime(value: Any, key: str) -> float:
    """Parse an ISO-8601 date-time (naive means UTC) into Unix seconds."""
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be an ISO-8601 date-time string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{key} is not a valid ISO-8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_run_options(body: Any, pipeline: PipelineSpec) -> RunOptions:
    """Validate a run request's body against the pipeline; unknown fields are ignored."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    refs = [key for key in ("branch", "tag", "pull_request") if body.get(key) is not None]
    if len(refs) > 1:
        raise ApiError(400, f"Only one of branch, tag or pull_request may be given, got {', '.join(refs)}")
    priority = body.get("priority") or "NORMAL"
    if priority not in PRIORITIES:
        raise ApiError(400, f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")
    actions_to_run = body.get("actions_to_run")
    if actions_to_run is not None:
        if not isinstance(actions_to_run, list) or not actions_to_run:
            raise ApiError(400, "actions_to_run must be a non-empty list of action ids")
        for action_id in actions_to_run:
            if not isinstance(action_id, int) or isinstance(action_id, bool):
                raise ApiError(400, f"actions_to_run must hold action ids (integers), got {action_id!r}")
            if pipeline.action(action_id) is None:
                raise ApiError(400, f"Action {action_id} not found in pipeline {pipeline.id}")
    delay = body.get("delay_until")
    comment = _optional_str(body, "comment")
    return RunOptions(
        comment=comment or "",
        priority=priority,
        refresh=_bool(body, "refresh"),
        clear_cache=_bool(body, "clear_cache"),
        branch=_ref_name(body, "branch", "name"),
        tag=_ref_name(body, "tag", "name"),
        pull_request=_ref_name(body, "pull_request", "name"),
        to_revision=_ref_name(body, "to_revision", "revision"),
        from_revision=_ref_name(body, "from_revision", "revision"),
        variables=parse_variables(body.get("variables")),
        actions_to_run=list(actions_to_run) if actions_to_run is not None else None,
        delay_until=parse_datetime(delay, "delay_until") if delay is not None else None,
        environment=_optional_str(body, "environment"),
        package_version=_optional_str(body, "package_version"),
    )
