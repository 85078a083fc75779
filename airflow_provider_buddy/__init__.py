"""Apache Airflow provider for Buddy.Works pipelines and GoRules BRMS deployment runs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
