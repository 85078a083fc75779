"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_buddy import __version__
from airflow_provider_buddy.hooks._forms import BUDDY_FORM, GORULES_FORM
from airflow_provider_buddy.utils.settings import config_section


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads: connection types, hooks, operators, sensors, triggers, links."""
    return {
        "package-name": "airflow-provider-buddy",
        "name": "Buddy.Works",
        "description": "Run and wait on Buddy.Works pipelines and GoRules BRMS deployment runs from Airflow.",
        "versions": [__version__],
        "connection-types": [
            {"connection-type": "buddy", "hook-class-name": "airflow_provider_buddy.hooks.buddy.BuddyHook", **BUDDY_FORM},
            {"connection-type": "gorules", "hook-class-name": "airflow_provider_buddy.hooks.gorules.GoRulesHook", **GORULES_FORM},
        ],
        "integrations": [
            {"integration-name": "Buddy.Works", "external-doc-url": "https://buddy.works/docs/api", "tags": ["software"]},
            {
                "integration-name": "GoRules BRMS",
                "external-doc-url": "https://docs.gorules.io/api-reference/introduction",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "Buddy.Works", "python-modules": ["airflow_provider_buddy.hooks.buddy"]},
            {"integration-name": "GoRules BRMS", "python-modules": ["airflow_provider_buddy.hooks.gorules"]},
        ],
        "operators": [
            {
                "integration-name": "GoRules BRMS",
                "python-modules": ["airflow_provider_buddy.operators.gorules", "airflow_provider_buddy.operators.hitl"],
            },
            {
                "integration-name": "Buddy.Works",
                "python-modules": ["airflow_provider_buddy.operators.buddy", "airflow_provider_buddy.operators.approval"],
            },
        ],
        "sensors": [
            {"integration-name": "Buddy.Works", "python-modules": ["airflow_provider_buddy.sensors.buddy"]},
            {"integration-name": "GoRules BRMS", "python-modules": ["airflow_provider_buddy.sensors.gorules"]},
        ],
        "triggers": [
            {
                "integration-name": "Buddy.Works",
                "python-modules": ["airflow_provider_buddy.triggers.buddy", "airflow_provider_buddy.triggers.approval"],
            },
            {
                "integration-name": "GoRules BRMS",
                "python-modules": ["airflow_provider_buddy.triggers.gorules", "airflow_provider_buddy.triggers.hitl"],
            },
        ],
        "extra-links": ["airflow_provider_buddy.links.BuddyExecutionLink", "airflow_provider_buddy.links.GoRulesRunLink"],
        "config": config_section(),
    }
