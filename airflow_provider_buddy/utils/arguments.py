"""Argument checks shared by the operators, sensors and hooks of both services: each error names the parameter."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

BUDDY_DEFAULT_CONN_ID = "buddy_default"
"""The connection Buddy hooks, operators and sensors use unless told otherwise."""

Check = Callable[[Any, str], object]
"""A check of one argument: ``check(value, parameter)`` raises an error naming ``parameter`` when ``value`` is wrong."""


def is_template(value: Any) -> bool:
    """True when ``value`` is a Jinja template still to be rendered (checked after rendering instead)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _resolvable(value: Any) -> bool:
    # Airflow's own rule for what it resolves when it renders a template field (Templater.render_template):
    # XComArg (``task.output``, a TaskFlow result, ``.output["key"]``, ``.map()``), a ``@dag`` function's
    # parameter (DagParam), a mapped task group's argument (MappedArgument), ``literal()``. Duck-typed as
    # Airflow does, so telling them apart needs no import at DAG-parse time.
    return not isinstance(value, (str, bytes, os.PathLike)) and callable(getattr(value, "resolve", None))


def _any_within(value: Any, test: Callable[[Any], bool], depth: int = 0) -> bool:
    """True when ``test`` holds for ``value`` or for anything inside it (lists, tuples, sets, dict values; 8 levels deep)."""
    if test(value):
        return True
    if depth > 8:
        return False
    if isinstance(value, dict):
        return any(_any_within(item, test, depth + 1) for item in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_any_within(item, test, depth + 1) for item in value)
    return False


def _holds_resolvable(value: Any) -> bool:
    return _any_within(value, _resolvable)


def _xcom_template(value: Any) -> bool:
    return isinstance(value, str) and is_template(value) and "xcom" in value.lower()


def resolved_later(value: Any) -> bool:
    """
    True when Airflow gives ``value`` its real value only when the task runs: a Jinja template, or a value it
    resolves when rendering the template fields (an ``XComArg`` such as ``task.output`` or a TaskFlow result,
    also inside a list or dict, a ``@dag`` parameter, a mapped task group's argument). Such a value is checked
    once it is known, at the start of ``execute()``; every other value is checked when the DAG is parsed.
    """
    return is_template(value) or _holds_resolvable(value)


def pulls_xcom(value: Any, depth: int = 0) -> bool:
    """
    True when ``value`` may need an XCom (or anything else only a worker resolves) to become known: a value Airflow
    resolves when rendering (an ``XComArg``, a ``@dag`` parameter, a mapped task group's argument), or a Jinja template
    that mentions ``xcom``; also inside a list or dict (Airflow renders and resolves those item by item).
    """
    return _any_within(value, lambda item: _resolvable(item) or _xcom_template(item), depth)


def optional(check: Check) -> Check:
    """``check``, letting None through."""

    def check_unless_none(value: Any, parameter: str) -> object:
        return None if value is None else check(value, parameter)

    return check_unless_none


class ArgumentChecks:
    """
    Checks a task's arguments by a table, ``argument_checks`` (parameter name -> :data:`Check`): each value given
    literally when the task is built (so a mistake is a DAG import error naming the parameter), and every value
    again at the start of ``execute()``, after Airflow rendered templates and resolved XComArgs, before anything
    is sent. The attribute of each name holds the argument.
    """

    argument_checks: ClassVar[Mapping[str, Check]] = {}

    def check_given_arguments(self, *names: str) -> None:
        """Check ``names`` (all in the table when none are given) whose values are known now; skip those resolved later."""
        for name in names or tuple(self.argument_checks):
            value = getattr(self, name)
            if not resolved_later(value):
                self.argument_checks[name](value, name)

    def check_arguments(self) -> None:
        """Check every argument in the table as the task runs (templates rendered, XComArgs resolved by then)."""
        for name, check in self.argument_checks.items():
            check(getattr(self, name), name)


def positive_int(value: Any, parameter: str) -> int:
    """``value`` as a positive whole number (an int or a digit string), or a ValueError naming ``parameter``."""
    if isinstance(value, bool):
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}")
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except (TypeError, ValueError):
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{parameter} must be a positive whole number, got {value!r}")
    return number


def non_negative_int(value: Any, parameter: str) -> int:
    """``value`` as a whole number >= 0 (an int, not a bool), or a ValueError naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{parameter} must be a whole number >= 0, got {value!r}")
    return value


def check_positive_int(value: Any, parameter: str) -> None:
    """Check now unless ``value`` is resolved later (then it is checked when the task runs)."""
    if not resolved_later(value):
        positive_int(value, parameter)


def non_empty(value: Any, parameter: str, *, error: Callable[[str], Exception] = ValueError) -> str:
    """``value`` as a non-blank string, or ``error`` (a ValueError unless told) naming ``parameter``."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{parameter} must be a non-empty string, got {value!r}")
    return value.strip()


def pipeline_ref(value: Any, parameter: str = "pipeline_id") -> int | str:
    """A pipeline id (positive int) or identifier/name (non-empty string)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{parameter} must be an int id or a pipeline identifier/name, got {value!r}")
    if isinstance(value, int):
        return positive_int(value, parameter)
    text = non_empty(value, parameter)
    return int(text) if text.isdigit() else text


def check_bool(value: Any, parameter: str, *, optional: bool = False) -> None:
    """A ValueError naming ``parameter`` unless ``value`` is True or False (or None when ``optional``): a
    string such as ``"false"`` would otherwise read as true."""
    if value is None and optional:
        return
    if not isinstance(value, bool):
        raise ValueError(f"{parameter} must be True or False, got {value!r}")


def positive_seconds(value: Any, parameter: str) -> float:
    """``value`` as a positive number of seconds, or a ValueError naming ``parameter``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{parameter} must be a positive number of seconds, got {value!r}")
    return float(value)


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` from Airflow's configuration."""
    from airflow_provider_buddy.utils.airflow_compat import conf

    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))
