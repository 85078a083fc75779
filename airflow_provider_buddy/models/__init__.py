"""Typed models of the APIs this provider talks to: :mod:`.buddy`, :mod:`.gorules`, and the status vocabulary
both are read in (:mod:`.status`, :mod:`.buddy_status`).

``from airflow_provider_buddy.models import Execution`` works for every name a model module lists in its
``__all__``; the module is loaded on first use (PEP 562), so importing one submodule — as every DAG file does
through the operators — does not build every pydantic model of both services. A new model is added to its
module (and that module's ``__all__``) only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_MODULES = ("status", "buddy_status", "buddy", "gorules")


def __getattr__(name: str) -> Any:
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name in getattr(module, "__all__", ()):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from airflow_provider_buddy.models.buddy import *  # noqa: F403
    from airflow_provider_buddy.models.buddy_status import *  # noqa: F403
    from airflow_provider_buddy.models.gorules import *  # noqa: F403
    from airflow_provider_buddy.models.status import *  # noqa: F403
