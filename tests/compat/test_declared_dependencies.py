"""Every third-party module the package imports at run time is a declared dependency: the base dependencies for the
provider, plus the ``emulator`` extra for ``airflow_provider_buddy.testing`` (whose server says which extra to
install when it is missing)."""

from __future__ import annotations

import re
import sys
from importlib.metadata import packages_distributions

import pytest

from tests.compat.imports_scan import PACKAGE, ROOT, imports_in

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")

# module -> why it need not be declared
NOT_DECLARED = {
    "airflow_provider_buddy": "this package",
    "pytest": "only airflow_provider_buddy.testing.pytest_plugin imports it, and only pytest loads that plugin",
    # hooks/_forms.py form_widgets: called only by Airflow 3.1's api-server, which provides (mocks) these itself
    "flask_appbuilder": "Airflow 3.1's api-server provides it while it builds the connection form",
    "flask_babel": "Airflow 3.1's api-server provides it while it builds the connection form",
    "wtforms": "Airflow 3.1's api-server provides it while it builds the connection form",
}
EMULATOR_PACKAGE = PACKAGE / "testing"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = {_name(r) for r in project["dependencies"]}
    emulator = {_name(r) for r in project["optional-dependencies"]["emulator"]}
    return base, emulator


def test_every_runtime_import_is_declared() -> None:
    base, emulator = _declared()
    distributions = packages_distributions()
    missing: list[str] = []
    for item in imports_in(PACKAGE):
        top = item.module.split(".")[0]
        if item.type_checking_only or top in sys.stdlib_module_names or top in NOT_DECLARED:
            continue
        allowed = base | emulator if item.path.is_relative_to(EMULATOR_PACKAGE) else base
        names = {_name(d) for d in distributions.get(top, [top])}
        if top == "airflow":  # many distributions ship airflow.*: the one that provides the imported module counts
            names = {"apache-airflow"} | {n for n in names if item.module.startswith("airflow.providers.")}
            if item.module.startswith("airflow.providers."):
                names = {"apache-airflow-providers-" + item.module.split(".")[2].replace("_", "-")}
                if item.module.startswith("airflow.providers.common."):
                    names = {"apache-airflow-providers-common-" + item.module.split(".")[3].replace("_", "-")}
        if not names & allowed:
            missing.append(f"{item.where()}: {item.module} (from {sorted(names)})")
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(sorted(set(missing)))
