# Every target creates the virtualenv and installs the project first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit e2e e2e-deps demo bench soak clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy airflow_provider_buddy

unit: install
	$(PY) -m pytest -q -m "not e2e"

# Debian packages the real-deployment suite needs: chromium (the browser tests; Playwright's own browser download is
# not reachable) and a PostgreSQL server (Airflow's metadata database). apt-get runs only when one is missing, as
# root or through password-less sudo; otherwise the step names the command to run.
E2E_DEBS_MISSING = $$( [ -x /usr/bin/chromium ] || printf ' chromium'; ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || printf ' postgresql' )
e2e-deps:
	@missing="$(E2E_DEBS_MISSING)"; \
	if [ -z "$$missing" ]; then echo "e2e-deps: chromium and postgresql are installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "e2e-deps: missing $$missing; as root: apt-get install -y $$missing" >&2; exit 1; fi; \
	echo "e2e-deps: apt-get install $$missing"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing

# One real Airflow deployment (PostgreSQL, api-server, scheduler, dag-processor, triggerer) + the emulator, started
# by the tests themselves; the scenario table goes to tmp/test-output/e2e/results.json
e2e: install e2e-deps
	$(PY) -m pytest -q -m e2e tests/deployment $(E2E_ARGS)

test: lint typecheck unit e2e

demo: install
	$(PY) -m airflow_provider_buddy.demo $(DEMO_ARGS)

bench: install
	$(PY) benchmarks/triggerer_scale.py $(BENCH_ARGS)

soak: install
	BUDDY_SOAK=1 $(PY) -m pytest -q tests/reliability $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .airflow-test tmp/test-output
