# Every target creates the virtualenv and installs the project first, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck unit package-check test-airflow31 e2e e2e-deps scale scale-deps scale-reduced demo bench soak clean

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

# The scale-out deployment (tests/scale): PostgreSQL, Redis (Celery's broker), CeleryExecutor with one worker, two
# triggerers, one SIGKILLed while hundreds of Buddy waits are deferred. redis-server (and PostgreSQL) come from Debian's
# packages, installed only when missing, as root or through password-less sudo.
SCALE_DEBS_MISSING = $$( command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || printf ' redis-server'; ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || printf ' postgresql' )
scale-deps:
	@missing="$(SCALE_DEBS_MISSING)"; \
	if [ -z "$$missing" ]; then echo "scale-deps: redis-server and postgresql are installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "scale-deps: missing $$missing; as root: apt-get install -y $$missing" >&2; exit 1; fi; \
	echo "scale-deps: apt-get install $$missing"; \
	$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing

# full size on demand (1170 waits; SCALE_ARGS for pytest, e.g. SCALE_ARGS="-s"); `make test` runs the reduced size
SCALE_SIZE ?= full
scale: install scale-deps
	SCALE_SIZE=$(SCALE_SIZE) $(PY) -m pytest -q -m scale tests/scale $(SCALE_ARGS)

scale-reduced: install scale-deps
	SCALE_SIZE=reduced $(PY) -m pytest -q -m scale tests/scale $(SCALE_ARGS)

# Build the sdist and the wheel, check their contents and metadata, install the wheel into a clean virtualenv
# (tmp/package/venv, not .venv) and check there: `airflow providers list`, the hooks and the [buddy] config section
# through Airflow's ProvidersManager, `airflow config list`, every example DAG imported, the emulator's extra
package-check: install
	nice $(PY) tests/packaging/check_package.py

# The oldest supported Airflow: a virtualenv with Airflow 3.1 (tests/compat/airflow31-requirements.txt) and this
# package, running a subset of the unit suite on it: the hooks (connection forms included), the triggers, every
# operator and sensor in real Airflow (dag.test), the approval gate through Airflow's HITL REST API, an example
# DAG of each service, the public-import and declared-dependency checks
VENV31 := tmp/venv-airflow31
PY31 := $(VENV31)/bin/python
STAMP31 := $(VENV31)/.installed
AIRFLOW31_TESTS := tests/hooks/test_buddy.py tests/hooks/test_gorules.py tests/hooks/test_connection_forms.py \
	tests/triggers/test_buddy.py tests/triggers/test_gorules.py \
	tests/operators/test_approval.py::test_approve_in_airflow_applies_in_buddy_once \
	tests/operators/test_approval.py::test_variables_prompt_becomes_a_form_answered_with_apply_variables \
	tests/operators/test_buddy.py::test_run_waits_and_records_everything \
	tests/operators/test_buddy.py::test_retry_reattaches_instead_of_starting_a_second_run \
	tests/operators/test_buddy.py::test_execution_timeout_cancels_the_run \
	tests/operators/test_buddy.py::test_run_on_approval_succeed_then_approve_operator \
	tests/operators/test_buddy.py::test_cancel_operator \
	tests/operators/test_buddy.py::test_retry_operator_waits_for_the_retried_run \
	tests/operators/test_buddy.py::test_clear_cache_operator \
	tests/operators/test_buddy_operations.py::test_scheduled_run_is_started_now_and_waited_on \
	tests/operators/test_hitl.py \
	tests/operators/test_gorules.py::test_deploy_and_wait \
	tests/operators/test_gorules.py::test_timeout_cancels_the_run_with_a_comment \
	tests/operators/test_gorules.py::test_cancel_run_operator \
	tests/sensors/test_buddy.py::test_success_returns_summary_and_link \
	tests/sensors/test_buddy.py::test_failure_names_action_error_and_log_tail \
	tests/sensors/test_buddy.py::test_execution_id_templated_from_upstream_xcom \
	tests/sensors/test_buddy.py::test_timeout_fails_without_a_retry_as_airflow_sensors_do \
	tests/sensors/test_buddy.py::test_a_deferrable_sensor_starts_in_the_triggerer_as_airflow_serializes_it \
	tests/sensors/test_gorules.py::test_completed_run_returns_its_summary \
	tests/example_dags/test_buddy_examples.py::test_release_approved \
	tests/example_dags/test_gorules_release.py::test_release_gate \
	tests/compat tests/test_get_provider_info.py

$(STAMP31): $(STAMP) tests/compat/airflow31-requirements.txt
	$(VENV)/bin/uv venv --quiet --allow-existing --python $(PY) $(VENV31)
	$(VENV)/bin/uv pip install --quiet --python $(PY31) -e '.[test]' -r tests/compat/airflow31-requirements.txt
	touch $(STAMP31)

test-airflow31: $(STAMP31)
	@$(PY31) -c 'import sys; from importlib.metadata import version; v = version("apache-airflow"); print("test-airflow31: Airflow", v); sys.exit(not v.startswith("3.1."))'
	nice $(PY31) -m pytest -q -p no:cacheprovider --tb=short -rfEs -m "not e2e" $(AIRFLOW31_TESTS) $(AIRFLOW31_ARGS)

test: lint typecheck unit package-check test-airflow31 e2e scale-reduced

demo: install
	$(PY) -m airflow_provider_buddy.demo $(DEMO_ARGS)

bench: install
	$(PY) benchmarks/triggerer_scale.py $(BENCH_ARGS)

soak: install
	BUDDY_SOAK=1 $(PY) -m pytest -q tests/reliability $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo .airflow-test tmp/test-output
