"""The provider info Airflow reads: valid against the installed Airflow's schema (a mistake there breaks every
``airflow`` command), and naming what exists."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import airflow
import jsonschema

from airflow_provider_buddy.get_provider_info import get_provider_info


def test_valid_against_airflows_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_every_named_module_and_class_exists() -> None:
    info = get_provider_info()
    modules = [m for kind in ("hooks", "operators", "sensors", "triggers") for entry in info[kind] for m in entry["python-modules"]]
    classes = [c["hook-class-name"] for c in info["connection-types"]] + info["extra-links"]
    for module in modules:
        importlib.import_module(module)
    for path in classes:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name).__name__ == name
