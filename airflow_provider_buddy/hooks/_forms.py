"""The connection forms of both services, as data: what the Airflow UI shows for a ``buddy`` or ``gorules``
connection. ``get_provider_info`` declares them (Airflow 3.2+ builds the form from there, without importing a
hook) and the hooks' ``get_ui_field_behaviour`` serves the same relabels and placeholders to Airflow 3.1.

No imports here: ``get_provider_info`` is read by every Airflow process.
"""

from __future__ import annotations

from typing import Any

DEFAULT_BUDDY_API_URL = "https://api.buddy.works"
GORULES_CLOUD_HINT = "https://{customer}.gorules.io"


def _extra_fields(verify_help: str) -> dict[str, Any]:
    """The client settings both services read from the connection's extra (see ``hooks/_connection.py``)."""
    return {
        "timeout": {
            "label": "Request timeout (s)",
            "schema": {"type": ["number", "null"], "default": 30, "exclusiveMinimum": 0},
            "description": "Seconds each request may take.",
        },
        "verify": {
            "label": "Verify TLS",
            "schema": {"type": ["string", "null"], "default": "true"},
            "description": verify_help,
        },
        "max_retries": {
            "label": "Retries",
            "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
            "description": "How many times a request that may be repeated is tried again (network errors, 429, 5xx).",
        },
        "retry_min_wait": {
            "label": "First retry wait (s)",
            "schema": {"type": ["number", "null"], "default": 1, "exclusiveMinimum": 0},
            "description": "The first pause between retries; it doubles each time (the server's Retry-After wins).",
        },
        "retry_max_wait": {
            "label": "Longest retry wait (s)",
            "schema": {"type": ["number", "null"], "default": 60, "exclusiveMinimum": 0},
            "description": "The longest pause between two retries.",
        },
        "retry_total_timeout": {
            "label": "All retries within (s)",
            "schema": {"type": ["number", "null"], "default": 300, "exclusiveMinimum": 0},
            "description": "The most time all tries of one request may take.",
        },
    }


BUDDY_FORM: dict[str, Any] = {
    "hook-name": "Buddy.Works",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "extra"],
        "relabeling": {"host": "API URL", "login": "Workspace", "password": "Personal access token"},
        "placeholders": {
            "host": f"{DEFAULT_BUDDY_API_URL} (EU: https://api.eu.buddy.works, on-premises: https://HOST/api)",
            "login": "my-workspace (the workspace's URL handle)",
            "password": "a personal access token (WORKSPACE, EXECUTION_INFO/PIPELINE_READ, EXECUTION_RUN/PIPELINE_RUN, EXECUTION_MANAGE)",
        },
    },
    "conn-fields": _extra_fields("true, false, or the path of a CA bundle (file or directory) that signed Buddy's certificate."),
}

GORULES_FORM: dict[str, Any] = {
    "hook-name": "GoRules BRMS",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "login", "port", "extra"],
        "relabeling": {"host": "BRMS URL", "password": "Personal access token"},
        "placeholders": {
            "host": f"{GORULES_CLOUD_HINT} or https://brms.example.com (with or without /api)",
            "password": "a personal access token from your BRMS profile (one per instance)",
        },
    },
    "conn-fields": {
        **_extra_fields("true, false, or the path of a CA bundle (file or directory) that signed the BRMS's certificate."),
        "run_page": {
            "label": "Run page URL",
            "schema": {"type": ["string", "null"]},
            "description": "Where the task's 'GoRules run' link opens a run, with {project_id} and {run_id} "
            "(the BRMS documents no deep link; empty: the BRMS's home page).",
        },
    },
}


EXTRA_PLACEHOLDER = '{"timeout": 30, "verify": true, "max_retries": 5}'


def field_behaviour(form: dict[str, Any]) -> dict[str, Any]:
    """
    A form's field behaviour the way a hook's ``get_ui_field_behaviour`` returns it (what Airflow 3.1 shows). The
    extra stays visible there, with the settings as a JSON example: 3.1 does not show the form's own extra fields.
    """
    behaviour = form["ui-field-behaviour"]
    return {
        "hidden_fields": [name for name in behaviour["hidden-fields"] if name != "extra"],
        "relabeling": dict(behaviour["relabeling"]),
        "placeholders": {**behaviour["placeholders"], "extra": EXTRA_PLACEHOLDER},
    }


def form_widgets(form: dict[str, Any]) -> dict[str, Any]:
    """
    A form's extra fields as the wtforms widgets a hook's ``get_connection_form_widgets`` returns: how Airflow 3.1
    shows them (its api-server stands in for wtforms and Flask-AppBuilder; only string, integer, boolean and password
    fields are allowed there, so numbers are text fields the hook reads as numbers). Airflow 3.2+ reads
    ``conn-fields`` instead and never calls this.
    """
    import importlib

    widgets = importlib.import_module("flask_appbuilder.fieldwidgets")
    lazy_gettext = importlib.import_module("flask_babel").lazy_gettext
    wtforms = importlib.import_module("wtforms")
    optional = importlib.import_module("wtforms.validators").Optional
    found: dict[str, Any] = {}
    for name, spec in form["conn-fields"].items():
        kind = next(t for t in spec["schema"]["type"] if t != "null")
        default = spec["schema"].get("default")
        label, description = lazy_gettext(spec["label"]), spec.get("description", "")
        if kind == "integer":
            found[name] = wtforms.IntegerField(
                label, validators=[optional()], widget=widgets.BS3TextFieldWidget(), default=default, description=description
            )
        else:
            shown = None if default is None else str(default)
            found[name] = wtforms.StringField(
                label, validators=[optional()], widget=widgets.BS3TextFieldWidget(), default=shown, description=description
            )
    return found
