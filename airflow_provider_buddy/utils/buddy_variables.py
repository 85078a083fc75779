"""Buddy variables a DAG author gives a task (run variables, approval answers): read with errors that name the
parameter and never echo a value, and encrypted values registered with Airflow's secrets masker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from airflow_provider_buddy.models.validation import describe_validation_error

if TYPE_CHECKING:
    from airflow_provider_buddy.models.buddy import Variable


def approval_variables_of(value: Any, parameter: str = "approval_variables") -> list[Variable]:
    """Read approval variables (dict or list), with an error naming the parameter (and never echoing values)."""
    from airflow_provider_buddy.models.buddy import variables_from

    try:
        return variables_from(value)
    except ValidationError as exc:
        raise ValueError(f"{parameter}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{parameter}: {exc}") from None


def mask_variables(value: Any) -> None:
    """
    Register the encrypted values among variables (as given, parsed or rendered) with Airflow's secrets masker, so
    that rendered template fields and logs show ``***``. A string (a template that rendered to text instead
    of a list or dict) is masked whole: it cannot be read as variables and may hold their values.
    """
    if not value:
        return
    secrets: list[str] = []
    if isinstance(value, str):
        secrets.append(value)
    else:
        from airflow_provider_buddy.models.buddy import variables_from

        try:
            secrets.extend(v.value for v in variables_from(value) if v.encrypted and v.value)
        except (ValueError, TypeError):
            return  # not variables: the parameter's own check reports it
    from airflow.providers.common.compat.sdk import mask_secret

    for secret in secrets:
        mask_secret(secret)


def check_variables(value: Any, parameter: str) -> None:
    """Check variables (dict or list; None for none) with an error naming ``parameter``, and mask their encrypted values."""
    mask_variables(approval_variables_of(value, parameter))
