"""The base of every scenario spec (Buddy's and GoRules'): unknown keys are errors, and so is any invalid value,
reported as a :class:`ScenarioError` that names the bad key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError


class ScenarioError(ValueError):
    """A scenario (file, dict, or the arguments of ``add_pipeline``, ``add_gorules_project``, ...) is invalid."""


class Spec(BaseModel):
    """A scenario object: unknown keys are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid")


SpecT = TypeVar("SpecT", bound=BaseModel)


def describe(error: ValidationError) -> str:
    """A validation error as ``where.the.key: what is wrong; ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "scenario"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def validate(model: type[SpecT], data: Mapping[str, Any] | Any, what: str) -> SpecT:
    """
    Build ``model`` from its JSON form.

    :param what: what it is, for the message ("pipeline", "GoRules project", ...).
    :raises ScenarioError: ``invalid {what}: {key}: {problem}`` when it is not valid.
    """
    try:
        return model.model_validate(dict(data) if isinstance(data, Mapping) else data)
    except ValidationError as exc:
        raise ScenarioError(f"invalid {what}: {describe(exc)}") from exc
