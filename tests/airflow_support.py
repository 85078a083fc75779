"""Running real DAGs in real Airflow (``dag.test()``) from tests, and reading back what happened.

The suite runs on Airflow 3.3 and (a subset, ``make test-airflow31``) on 3.1; where the two differ in what a test
needs, the difference is bridged here, in test support, never in the provider: :func:`sync_dag` (where ``DagBag``
lives), :func:`hitl_waiting_states` (the state a human-in-the-loop task waits in), :func:`api_client` (the REST
token) and :func:`serve_hitl_reads_in_dag_test` (``dag.test()`` answering a trigger's HITL read).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any


def sync_dag(dag: Any) -> None:
    """Serialize an in-memory DAG into the metadata DB, as the DAG processor would."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    except ImportError:  # Airflow 3.1: airflow.models.dagbag, and its DagBag takes no bundle_name
        from airflow.models.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    by_version = {"bundle_name": "dags-folder"} if "bundle_name" in DagBag.__init__.__code__.co_varnames else {}
    bag = DagBag(collect_dags=False, bundle_path=Path(dag.fileloc).parent, **by_version)
    dag.relative_fileloc = Path(dag.fileloc).name
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def run_dag(dag: Any, *, logical_date: datetime | None = None, run_conf: dict[str, Any] | None = None) -> Any:
    """
    Run ``dag`` end to end with ``dag.test()`` (tasks, deferrals and triggers in-process); returns the DagRun.

    A given ``logical_date`` also fixes ``run_after``, so the run id is the same each time (as for a
    task retried in the same DAG run).
    """
    sync_dag(dag)
    kwargs: dict[str, Any] = {"run_conf": run_conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
        kwargs["run_after"] = logical_date
    return dag.test(**kwargs)


def requires_airflow(minimum: str, reason: str) -> Any:
    """Skip a test on an Airflow older than ``minimum`` (e.g. ``"3.2"``), saying what needs that version."""
    import airflow
    import pytest
    from packaging.version import Version

    running = Version(airflow.__version__)
    return pytest.mark.skipif(
        running.release[:2] < Version(minimum).release[:2], reason=f"needs Airflow {minimum}+ (running {running}): {reason}"
    )


def requires_triggerer_xcom_store() -> Any:
    """Skip a test of a task ending in the triggerer with its XComs stored there: that needs the Task SDK's
    ``BaseXCom.aset`` (Airflow 3.3.2 has it; 3.1.8 neither has it nor exports ``BaseXCom`` from ``airflow.sdk``, and
    there the trigger hands the task to a worker, which pushes the XComs itself)."""
    import airflow
    import pytest

    try:
        from airflow.sdk import BaseXCom

        has_aset = hasattr(BaseXCom, "aset")
    except ImportError:
        has_aset = False
    return pytest.mark.skipif(
        not has_aset,
        reason=f"needs Airflow 3.3 (running {airflow.__version__}): the triggerer stores a task's XComs through the "
        "Task SDK's BaseXCom.aset (in 3.3.2, not in 3.1.8); on 3.1 a worker ends such a task and pushes them",
    )


def airflow_has_awaiting_input() -> bool:
    """Airflow 3.3+: a human-in-the-loop task waits in the ``awaiting_input`` state with no trigger. Before, Airflow's
    HITL operators defer to ``HITLTrigger``, so a gate needs a triggerer (``dag.test()`` runs it in-process)."""
    from airflow.utils.state import TaskInstanceState

    return hasattr(TaskInstanceState, "AWAITING_INPUT")


def hitl_waiting_states() -> tuple[Any, ...]:
    """
    The states in which a HITL task's request may be answered: ``awaiting_input`` on Airflow 3.3+. Before 3.3 the
    task defers to its trigger, and ``dag.test()`` runs that trigger in-line with the task instance set back to
    queued (``airflow/sdk/definitions/dag.py``), so both count; the caller then waits for the request itself
    (``GET .../hitlDetails`` answering 200, not yet answered).
    """
    from airflow.utils.state import TaskInstanceState

    if airflow_has_awaiting_input():
        return (TaskInstanceState.AWAITING_INPUT,)
    return (TaskInstanceState.DEFERRED, TaskInstanceState.QUEUED)


def serve_hitl_reads_in_dag_test() -> None:
    """
    Test support: ``dag.test()`` runs a deferred task's trigger in-process under the *task* supervisor, which does not
    answer a trigger's ``GetHITLDetailResponse`` (only the triggerer does, ``airflow/jobs/triggerer_job_runner.py``),
    so a trigger reading a human-in-the-loop answer gets None there. Answer it the way the triggerer does: through
    the Execution API client. (The real-deployment suite runs the real triggerer.)
    """
    from airflow.jobs.triggerer_job_runner import HITLDetailResponseResult
    from airflow.sdk.execution_time.comms import GetHITLDetailResponse
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    original = InProcessTestSupervisor._handle_request
    if getattr(original, "_serves_hitl", False):
        return

    def _handle_request(self: Any, msg: Any, log: Any, req_id: int) -> None:
        if isinstance(msg, GetHITLDetailResponse):
            answer = self.client.hitl.get_detail_response(ti_id=msg.ti_id)
            self.send_msg(HITLDetailResponseResult.from_api_response(response=answer), request_id=req_id, error=None)
            return
        original(self, msg, log, req_id)

    _handle_request._serves_hitl = True  # type: ignore[attr-defined]
    InProcessTestSupervisor._handle_request = _handle_request  # type: ignore[method-assign]


def states(dag_run: Any) -> dict[str, str]:
    """Final state of each task."""
    return {ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """One XCom value of the run, deserialized."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)).first()
        return XComModel.deserialize_value(row) if row is not None else None


def rendered_fields(dag_run: Any, task_id: str) -> dict[str, Any]:
    """What the UI's "Rendered Template" view shows for a task."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(RenderedTaskInstanceFields, (dag_run.dag_id, task_id, dag_run.run_id, -1))
        return dict(row.rendered_fields) if row is not None else {}


class HitlResponder:
    """
    Answers a human-in-the-loop request the way a person's browser does: through Airflow's REST API
    (``PATCH .../hitlDetails``) served by the real api-server app, from a background thread while
    ``dag.test()`` runs in the main thread.

    :param client: a client for the api-server app (see :func:`api_client`).
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.answers: list[tuple[int, Any]] = []
        self.details: dict[str, Any] = {}
        self._threads: list[Any] = []

    def answer(
        self,
        dag_id: str,
        task_id: str,
        choice: str,
        *,
        params_input: dict[str, Any] | None = None,
        before: Any = None,
        timeout: float = 900.0,
    ) -> None:
        """
        In the background: wait until ``task_id`` awaits input, run ``before()``, then answer ``choice``.

        It keeps trying until Airflow accepts the answer: a slow machine can take minutes to get there, and
        if the responder gave up, the DAG run would wait for an answer forever. ``timeout`` only caps a
        test that is broken anyway (pytest's own timeout comes first).
        """
        import threading
        import time

        def run() -> None:
            from airflow.models.taskinstance import TaskInstance
            from airflow.utils.session import create_session
            from sqlalchemy import select

            deadline = time.monotonic() + timeout
            refused: list[Any] = []
            while time.monotonic() < deadline:
                with create_session() as session:
                    ti = session.scalar(
                        select(TaskInstance).where(
                            TaskInstance.dag_id == dag_id,
                            TaskInstance.task_id == task_id,
                            TaskInstance.state.in_(hitl_waiting_states()),
                        )
                    )
                    run_id = ti.run_id if ti is not None else None
                if run_id is not None:
                    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
                    detail = self.client.get(path)
                    if detail.status_code != 200 or detail.json().get("response_received"):
                        time.sleep(0.2)  # Airflow 3.1: the request is not written yet (or is an earlier try's, answered)
                        continue
                    self.details[task_id] = detail.json()
                    if before is not None and not refused:
                        before()
                    response = self.client.patch(path, json={"chosen_options": [choice], "params_input": params_input or {}})
                    if response.status_code < 300:
                        self.answers.append((response.status_code, response.json()))
                        return
                    refused.append((response.status_code, response.text))  # e.g. the database busy: try again
                time.sleep(0.2)
            self.answers.append((0, f"{task_id} never took an answer (refused: {refused[-3:]})"))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        """Wait for every answer thread."""
        for thread in self._threads:
            thread.join(timeout=60)  # the DAG run has ended, so the answer was taken: this returns at once


def api_client() -> Any:
    """A client for Airflow's real api-server app (public REST API), sharing the test metadata DB."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())
    if client.get("/api/v2/dags", params={"limit": 1}).status_code == 401:
        # Airflow 3.1: [core] simple_auth_manager_all_admins does not authenticate a request by itself (3.3 has a
        # middleware that does); take the all-admins token as the UI does
        client.headers["Authorization"] = "Bearer " + client.get("/auth/token").json()["access_token"]
    return client
