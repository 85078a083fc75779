"""The connection forms Airflow's UI shows for ``buddy`` and ``gorules``: from the provider info on Airflow 3.2+
(read through the real api-server's ``/ui/connections/hook_meta``), from the hooks on 3.1; the form's fields are
read back as the hook's settings."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_buddy.hooks.buddy import BuddyHook, buddy_settings
from airflow_provider_buddy.hooks.gorules import GoRulesHook, gorules_settings

EXTRAS = ["max_retries", "retry_max_wait", "retry_min_wait", "retry_total_timeout", "timeout", "verify"]


@pytest.fixture(scope="module")
def hook_meta(airflow_api: Any) -> dict[str, Any]:
    answer = airflow_api.get("/ui/connections/hook_meta")
    assert answer.status_code == 200
    return {item["connection_type"]: item for item in answer.json()}


@pytest.mark.parametrize(
    ("conn_type", "name", "shown", "hidden"),
    [
        ("buddy", "Buddy.Works", {"host": "API URL", "login": "Workspace", "password": "Personal access token"}, ["port"]),
        ("gorules", "GoRules BRMS", {"host": "BRMS URL", "password": "Personal access token"}, ["login", "port"]),
    ],
)
def test_the_ui_gets_each_services_form(
    hook_meta: dict[str, Any], conn_type: str, name: str, shown: dict[str, str], hidden: list[str]
) -> None:
    meta = hook_meta[conn_type]
    assert meta["hook_name"] == name
    fields = meta["standard_fields"]
    for field, title in shown.items():
        assert fields[field]["title"] == title and not fields[field]["hidden"] and fields[field]["placeholder"]
    assert all(fields[field]["hidden"] for field in hidden)
    assert sorted(set(meta["extra_fields"]) - {"run_page"}) == EXTRAS and ("run_page" in meta["extra_fields"]) is (conn_type == "gorules")
    assert meta["extra_fields"]["timeout"]["schema"]["title"] == "Request timeout (s)"
    # Airflow 3.2+ shows the provider info's default (a number); 3.1 the hook's wtforms field, a text field for a decimal
    assert meta["extra_fields"]["timeout"]["value"] in (30, "30")


@pytest.mark.parametrize("hook", [BuddyHook, GoRulesHook])
def test_the_hooks_serve_the_same_labels_to_airflow_3_1(hook_meta: dict[str, Any], hook: Any) -> None:
    behaviour = hook.get_ui_field_behaviour()
    fields = hook_meta[hook.conn_type]["standard_fields"]
    for field, title in behaviour["relabeling"].items():
        assert fields[field]["title"] == title
    assert "extra" not in behaviour["hidden_fields"] and '"timeout"' in behaviour["placeholders"]["extra"]


@pytest.mark.parametrize(("reader", "conn_type"), [(buddy_settings, "buddy"), (gorules_settings, "gorules")])
def test_the_forms_fields_are_read_as_settings(reader: Any, conn_type: str) -> None:
    """What the form saves (field names, possibly prefixed; empty fields meaning the default) is what the hook uses."""
    extra = {
        f"extra__{conn_type}__timeout": "12.5",
        "max_retries": 2,
        "verify": "false",
        "retry_min_wait": "",
        "retry_total_timeout": None,
    }
    conn = Connection(conn_id="c", conn_type=conn_type, host="https://example.com", login="acme", password="t", extra=extra)
    settings = reader(conn)
    assert (settings.timeout, settings.max_retries, settings.verify) == (12.5, 2, False)
    assert (settings.retry_min_wait, settings.retry_total_timeout) == (1.0, 300.0)
