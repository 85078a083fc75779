# Every target creates the virtualenv and installs the project first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo bench soak clean

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
	$(PY) -m pytest -q

test: lint typecheck unit

demo: install
	$(PY) -m airflow_provider_buddy.demo $(DEMO_ARGS)

bench: install
	$(PY) benchmarks/triggerer_scale.py $(BENCH_ARGS)

soak: install
	BUDDY_SOAK=1 $(PY) -m pytest -q tests/reliability $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .airflow-test
