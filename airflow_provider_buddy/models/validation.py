"""Turn pydantic validation errors into short messages that name the parameter and never echo input."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(error: ValidationError) -> str:
    """
    One line per problem, ``parameter: what is wrong``, without the offending values.

    Input values are left out on purpose: they may hold encrypted variables.

    :param error: the error pydantic raised.
    """
    parts: list[str] = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "request"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)
