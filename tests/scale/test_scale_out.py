"""Scale-out on Airflow's own distributed machinery: PostgreSQL, CeleryExecutor with Redis, two triggerers, one lost
while hundreds of Buddy waits are deferred (scenario.py has the steps, conftest.py the deployment).

``make scale`` runs the full size (``SCALE_SIZE=full``); ``make test`` the reduced one (306 waits killed, 75 frozen).
The frozen triggerer goes first: both triggerers are alive again after it, which the SIGKILL scenario needs.
"""

from __future__ import annotations

import json

import pytest

from tests.scale.conftest import Cluster
from tests.scale.scenario import ScaleResult, Scenario, TriggererFrozen, TriggererKilled, format_result

pytestmark = pytest.mark.timeout(3600)  # each scenario keeps its own deadline (scenario.run)
DONE: dict[str, ScaleResult] = {}


def _run(cluster: Cluster, scenario: Scenario) -> ScaleResult:
    scenario.result.settings.update(cluster.settings)
    try:
        scenario.run(timeout=1800.0 if scenario.size.waits > 500 else 600.0)
    finally:
        cluster.record(scenario.result.to_dict(), format_result(scenario.result))
    return scenario.result


def _assert_clean(result: ScaleResult) -> None:
    problems = result.problems()
    assert not problems, f"{problems}\n" + "\n".join(result.notes[:40]) + "\n" + json.dumps(result.phases)


def test_triggerer_frozen_past_the_health_threshold(cluster: Cluster) -> None:
    """A triggerer SIGSTOPped until Airflow hands its triggers to the other one, then SIGCONTed: Airflow 3.3 calls
    on_kill on its copies (apache/airflow#73454); Buddy gets no cancel from that, and every DAG run ends right."""
    size = cluster.frozen_size
    result = _run(cluster, TriggererFrozen(cluster, size, name=f"one of two triggerers frozen ({size.waits} waits)"))
    _assert_clean(result)


def test_triggerer_killed_mid_wait(cluster: Cluster) -> None:
    """Every wait deferred across both triggerers; one SIGKILLed; the other takes its triggers over; every DAG run
    ends right, nothing is run, approved or cancelled twice, nothing is left running, reads stay shared."""
    size = cluster.size
    assert size.waits >= 300
    result = _run(cluster, TriggererKilled(cluster, size, name=f"one of two triggerers SIGKILLed ({size.waits} waits)"))
    DONE["killed"] = result
    _assert_clean(result)


@pytest.mark.xfail(
    strict=True,
    reason="PollingTrigger.run() forgets the shared read when its wait ends, so each further waiter on the same execution "
    "reads it again: N waiters ending on one run cost N reads in that last interval, not 1 (triggers/_base.py)",
)
def test_reads_stay_shared_as_the_waits_end() -> None:
    """When a run ends, its waiters on one triggerer still read it once per interval between them (the SIGKILL
    scenario's ten sensors per shared execution): at most one read within 0.9 interval per triggerer."""
    if "killed" not in DONE:
        pytest.skip("the SIGKILL scenario did not run to its end")
    result = DONE["killed"]
    assert result.reads_at_end_max <= 1, f"{result.end_of_wait_rereads} re-reads; up to {result.reads_at_end_max} within 0.9 interval"
