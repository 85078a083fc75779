"""``make package-check``: build the sdist and the wheel, check what they contain, install the wheel into a clean
virtualenv (not the dev one) and check there that Airflow lists the provider (``airflow providers list`` and its
ProvidersManager: connection types, config section), that ``airflow config list`` shows ``[buddy]``, that the example
DAGs import, and that the installed emulator runs and names its extra when its server packages are missing.

Run with the dev virtualenv's Python from the repository root: ``python tests/packaging/check_package.py``.
Everything goes under ``tmp/package/`` (removed first). Prints the time of each step.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "tmp" / "package"
DIST = WORK / "dist"
VENV = WORK / "venv"
PROVIDER_CLASSIFIER = "Framework :: Apache Airflow :: Provider"
# uv (a dev dependency) builds, creates the clean virtualenv and installs: seconds where pip takes minutes
UV = Path(sys.executable).parent / "uv" if (Path(sys.executable).parent / "uv").exists() else Path(shutil.which("uv") or "uv")

# the clean venv runs this: every example DAG through Airflow's own DAG loader (as the DAG processor parses them)
DAG_IMPORT = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3.2+
except ImportError:
    from airflow.models.dagbag import DagBag  # Airflow 3.1
import airflow_provider_buddy
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()},
                  "package": airflow_provider_buddy.__file__}))
"""
# ... this: what Airflow's ProvidersManager found through the entry point (the provider, its connection types with
# their hooks, its config section)
PROVIDERS_MANAGER = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
info = pm.providers.get("airflow-provider-buddy")
hooks = {conn_type: pm.hooks[conn_type] for conn_type in ("buddy", "gorules") if conn_type in pm.hooks}
print(json.dumps({
    "version": info.version if info else None,
    "hooks": {k: f"{h.package_name}:{h.hook_class_name}" if h else None for k, h in hooks.items()},
    "config": sorted({section for name, cfg in pm.provider_configs if name == "airflow-provider-buddy" for section in cfg}),
}))
"""
# ... and this: the packaged emulator scenarios load, the emulator serves from the installed package, and without
# its server's packages it names the extra to install
EMULATOR = """
import json, sys
from importlib.resources import files
import httpx
from airflow_provider_buddy.testing import BuddyEmulator
from airflow_provider_buddy.testing.scenario import load_scenario
scenarios = []
for item in files("airflow_provider_buddy.testing.scenarios").iterdir():
    if item.name.endswith(".json"):
        load_scenario(str(item))
        scenarios.append(item.name)
with BuddyEmulator(workspace="acme", token="t") as emu:
    status = httpx.get(emu.url + "/user", headers={"Authorization": "Bearer t"}).status_code
sys.modules["uvicorn"] = None  # as if the emulator extra were not installed
try:
    BuddyEmulator().start()
    error = None
except RuntimeError as exc:
    error = str(exc)
print(json.dumps({"scenarios": scenarios, "status": status, "error": error}))
"""


class CheckFailed(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def run(*args: str | Path, cwd: Path = WORK, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckFailed(f"`{' '.join(map(str, args))}` exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result.stdout


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def source_files() -> set[str]:
    """What the wheel must carry: every module of the package, py.typed and the emulator's scenarios."""
    package = ROOT / "airflow_provider_buddy"
    found = {p.relative_to(ROOT).as_posix() for p in package.rglob("*.py") if "__pycache__" not in p.parts}
    found |= {p.relative_to(ROOT).as_posix() for p in (package / "testing" / "scenarios").glob("*.json")}
    return found | {"airflow_provider_buddy/py.typed"}


def build() -> tuple[Path, Path]:
    shutil.rmtree(WORK, ignore_errors=True)
    DIST.mkdir(parents=True)
    run(UV, "build", "--quiet", "--sdist", "--wheel", "--out-dir", DIST, ROOT, cwd=ROOT)
    sdists, wheels = sorted(DIST.glob("*.tar.gz")), sorted(DIST.glob("*.whl"))
    check(len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel, got {sdists + wheels}")
    return sdists[0], wheels[0]


def check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    wanted = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"} | source_files()
    check(not wanted - names, f"the sdist lacks {sorted(wanted - names)}")
    check(any(n.startswith("example_dags/") and n.endswith(".py") for n in names), "the sdist lacks the example DAGs")
    junk = sorted(n for n in names if n.startswith((".venv", "tmp/", ".git/")) or "__pycache__" in n or n.endswith(".pyc"))
    check(not junk, f"the sdist carries build junk: {junk[:10]}")


def check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n.rsplit("/", 1)[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    missing = source_files() - names
    check(not missing, f"the wheel lacks {sorted(missing)}")
    stray = sorted(n for n in names if not n.startswith(("airflow_provider_buddy/", info + "/")))
    check(not stray, f"the wheel carries files outside the package: {stray[:10]}")
    check(f"{info}/licenses/LICENSE" in names, "the wheel lacks its LICENSE")

    spec = project()
    check(metadata["Name"] == spec["name"] and metadata["Version"] == spec["version"], "wheel name/version differ from pyproject")
    check(metadata["License-Expression"] == "Apache-2.0", f"License-Expression is {metadata['License-Expression']!r}")
    check(metadata["Requires-Python"] == spec["requires-python"], "Requires-Python differs from pyproject")
    classifiers = metadata.get_all("Classifier") or []
    check(PROVIDER_CLASSIFIER in classifiers, f"classifier {PROVIDER_CLASSIFIER!r} missing")
    check(sorted(classifiers) == sorted(spec["classifiers"]), "classifiers differ from pyproject")  # type: ignore[arg-type]
    check(metadata["Keywords"] and "airflow" in metadata["Keywords"], "keywords missing")
    check(len(metadata.get_all("Project-URL") or []) >= 1, "project URLs missing")
    check("apache_airflow_provider" in entry_points and "get_provider_info" in entry_points, "provider entry point missing")

    # Requires-Dist: the base dependencies and each extra exactly as pyproject declares them
    got: dict[str, set[str]] = {}
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        group = ""
        # an extra's requirement ends its marker with `extra == "<name>"`, after its own marker if it has one
        found = re.search(r'(?:^| and )extra == "([^"]+)"$', str(req.marker or ""))
        if found:
            group, rest = found.group(1), str(req.marker)[: found.start()]
            req.marker = Marker(rest) if rest else None
        got.setdefault(group, set()).add(str(req))
    wanted = {"": {str(Requirement(r)) for r in spec["dependencies"]}}  # type: ignore[attr-defined]
    wanted |= {e: {str(Requirement(r)) for r in reqs} for e, reqs in spec["optional-dependencies"].items()}  # type: ignore[attr-defined]
    check(got == wanted, f"Requires-Dist differs from pyproject:\nwheel:     {got}\npyproject: {wanted}")


def install(wheel: Path) -> Path:
    run(UV, "venv", "--quiet", "--python", sys.executable, VENV)
    python = VENV / "bin" / "python"
    run(UV, "pip", "install", "--quiet", "--python", python, wheel)
    run(UV, "pip", "check", "--python", python)
    return python


def check_installed(python: Path) -> None:
    home = WORK / "airflow-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env |= {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": f"{VENV / 'bin'}:{env.get('PATH', '')}"}

    listed = json.loads(run(VENV / "bin" / "airflow", "providers", "list", "--output", "json", env=env))
    ours = [p for p in listed if p.get("package_name") == "airflow-provider-buddy"]
    check(ours, f"`airflow providers list` does not show airflow-provider-buddy: {[p.get('package_name') for p in listed]}")
    check(ours[0].get("version") == project()["version"], f"listed version {ours[0].get('version')} != {project()['version']}")

    result = json.loads(run(python, "-c", DAG_IMPORT, ROOT / "example_dags", env=env).strip().splitlines()[-1])
    check(str(VENV) in result["package"], f"the DAGs imported the source tree, not the installed wheel: {result['package']}")
    check(not result["errors"], f"example DAG import errors: {result['errors']}")
    expected = {p.stem for p in (ROOT / "example_dags").glob("*.py") if not p.name.startswith("_")}
    check(expected <= set(result["dags"]), f"example DAGs missing from the DagBag: {sorted(expected - set(result['dags']))}")

    found = json.loads(run(python, "-c", PROVIDERS_MANAGER, env=env).strip().splitlines()[-1])
    check(found["version"] == project()["version"], f"ProvidersManager did not find the provider: {found}")
    wanted_hooks = {
        "buddy": "airflow-provider-buddy:airflow_provider_buddy.hooks.buddy.BuddyHook",
        "gorules": "airflow-provider-buddy:airflow_provider_buddy.hooks.gorules.GoRulesHook",
    }
    check(found["hooks"] == wanted_hooks, f"connection types: {found['hooks']}, expected {wanted_hooks}")
    check(found["config"] == ["buddy"], f"provider config sections: {found['config']}")

    config = run(VENV / "bin" / "airflow", "config", "list", "--section", "buddy", env=env)
    keys = ("triggerer_max_in_flight", "http_transport", "resume_hold_seconds", "end_in_triggerer")
    check("[buddy]" in config and all(k in config for k in keys), f"`airflow config list --section buddy` shows:\n{config}")

    emulator = json.loads(run(python, "-c", EMULATOR, env=env).strip().splitlines()[-1])
    check("demo.json" in emulator["scenarios"], f"the packaged scenarios did not load: {emulator['scenarios']}")
    check(emulator["status"] == 200, f"the installed emulator answered GET /user with {emulator['status']}")
    check(
        emulator["error"] and "pip install 'airflow-provider-buddy[emulator]'" in emulator["error"],
        f"without uvicorn the emulator should name the extra to install, got {emulator['error']!r}",
    )
    print(f"  providers list: airflow-provider-buddy {ours[0]['version']}; hooks: {', '.join(found['hooks'])}; config: [buddy]")
    print(f"  DAGs imported: {', '.join(result['dags'])}")


def main() -> int:
    started = time.monotonic()
    timings: list[tuple[str, float]] = []
    try:
        t = time.monotonic()
        sdist, wheel = build()
        timings.append(("build sdist + wheel", time.monotonic() - t))
        t = time.monotonic()
        check_sdist(sdist)
        check_wheel(wheel)
        timings.append(("check sdist contents + wheel metadata", time.monotonic() - t))
        t = time.monotonic()
        python = install(wheel)
        timings.append(("clean venv + install the wheel + pip check", time.monotonic() - t))
        t = time.monotonic()
        check_installed(python)
        timings.append(("providers list, ProvidersManager, config list, example DAGs, emulator", time.monotonic() - t))
    except CheckFailed as failure:
        print(f"package-check FAILED: {failure}", file=sys.stderr)
        return 1
    for name, seconds in timings:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"package-check passed: {sdist.name}, {wheel.name} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
