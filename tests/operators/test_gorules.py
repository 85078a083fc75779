"""GoRules operators in real Airflow (dag.test) against the emulated BRMS: deploy and wait in both modes,
every deploy answer shape, no second deploy on retry or lost answer, cancel on timeout/kill, cancel run."""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import DAG, task

from airflow_provider_buddy.operators.gorules import GoRulesCancelRunOperator, GoRulesDeployReleaseOperator
from airflow_provider_buddy.testing import BuddyEmulator, Fault
from tests.airflow_support import run_dag, states, xcom
from tests.conftest import LogCapture
from tests.emulator_clock import clock_held_until_answered
from tests.gorules_support import Brms, brms_fixture, gorules_conn_fixture, make_brms  # noqa: F401

pytestmark = pytest.mark.usefixtures("airflow_db", "gorules_conn")
MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
_ids = itertools.count()


def new_dag() -> DAG:
    return DAG(dag_id=f"gorules_ops_{next(_ids)}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)


def deploy_op(brms: Brms, env: str, **kwargs: Any) -> GoRulesDeployReleaseOperator:
    kwargs.setdefault("poll_interval", 0.1)
    return GoRulesDeployReleaseOperator(
        task_id="deploy", project_id=brms.project_id, release_id=brms.release_id, environment_id=brms.env[env], **kwargs
    )


@MODES
def test_deploy_and_wait(brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    with new_dag() as dag:
        deploy_op(brms, "qa", comment="Nightly rules", deferrable=deferrable)
    with clock_held_until_answered(emulator, r"/runs/[^/]+$"):
        dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and run["status"] == "completed"
    assert xcom(dag_run, "deploy") == run["id"] and xcom(dag_run, "deploy", "run_id") == run["id"]
    assert xcom(dag_run, "deploy", "run_url") == f"{emulator.url}/api/projects/{brms.project_id}/runs/{run['id']}"
    summary = xcom(dag_run, "deploy", "summary")
    assert summary["status"] == "completed" and summary["jobs"][0]["environment"] == "QA (qa)"
    [sent] = brms.deploys()
    assert sent.json["releaseId"] == brms.release_id and sent.json["comment"].startswith("Nightly rules [airflow:")
    assert ("Waiting in the triggerer on GoRules run" in logs.text) is deferrable


@pytest.mark.parametrize("answer", ["id", "empty"])
def test_undocumented_deploy_answers_still_find_the_run(emulator: BuddyEmulator, answer: str, logs: LogCapture) -> None:
    brms = make_brms(emulator, deploy_answer=answer)
    brms.start("dev")  # someone else's run of the same release: must not be taken for ours
    with new_dag() as dag:
        deploy_op(brms, "dev")
    dag_run = run_dag(dag)
    newest = emulator.gorules_runs(brms.project_id)[0]
    assert states(dag_run) == {"deploy": "success"} and xcom(dag_run, "deploy") == newest["id"]
    assert newest["createdBy"]["lastName"] == "Bot" and len(brms.deploys()) == 1
    assert ("No new change request; looking the run up among the project's runs" in logs.text) is (answer == "empty")


@pytest.mark.parametrize("comment_visible", [True, False], ids=["by-marker", "by-release-and-environment"])
def test_retry_reattaches_instead_of_deploying_again(emulator: BuddyEmulator, comment_visible: bool, logs: LogCapture) -> None:
    brms = make_brms(emulator, comment_visible=comment_visible)
    # the first try deploys, then its first read of the run fails for good: the task fails and is retried
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/runs/[^/]+$", times=1))
    with new_dag() as dag:
        deploy_op(brms, "staging", on_approval="succeed", retries=1, retry_delay=timedelta(seconds=0))
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and len(brms.deploys()) == 1
    assert xcom(dag_run, "deploy") == run["id"] and xcom(dag_run, "deploy", "summary")["waiting_environments"] == ["Staging (staging)"]
    why = "carries this task instance's marker" if comment_visible else "created during this DAG run, by an earlier try"
    assert "Re-attaching to GoRules run" in logs.text and why in logs.text


@MODES
def test_a_retry_takes_the_completed_run_of_its_earlier_try_instead_of_deploying_again(
    brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture
) -> None:
    """Airflow failed try 1 after its run was deployed (as its defer race does, or a lost read): by the time try 2
    starts, the run has completed. Try 2 takes it as the result; deploying again would deploy the release twice."""
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/runs/[^/]+$", times=1))
    with new_dag() as dag:
        deploy_op(brms, "dev", deferrable=deferrable, retries=1, retry_delay=timedelta(0), on_retry_callback=lambda _: emulator.advance(60))
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert run["status"] == "completed" and len(brms.deploys()) == 1
    assert states(dag_run) == {"deploy": "success"} and dag_run.get_task_instance("deploy").try_number == 2
    assert xcom(dag_run, "deploy") == run["id"] and xcom(dag_run, "deploy", "summary")["status"] == "completed"
    assert "deployed by try 1 of this task instance: taken as the result" in logs.text


def test_lost_deploy_answer_finds_the_run_instead_of_deploying_again(brms: Brms, emulator: BuddyEmulator, logs: LogCapture) -> None:
    emulator.add_fault(Fault(kind="drop", method="POST", path=r"/releases/deploy$", when="after"))
    with new_dag() as dag:
        deploy_op(brms, "dev", wait_for_completion=False)
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and xcom(dag_run, "deploy", "run_id") == run["id"]
    assert len(brms.deploys()) == 1 and "the deploy did reach GoRules" in logs.text


@MODES
def test_timeout_cancels_the_run_with_a_comment(brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture) -> None:
    with new_dag() as dag:
        deploy_op(brms, "slow", deferrable=deferrable, execution_timeout=timedelta(seconds=1.5))
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "failed"} and run["status"] == "cancelled"
    assert run["cancelledComment"].startswith(f"Cancelled by Airflow: task {dag.dag_id}.deploy was killed or timed out [airflow:")
    assert ("GoRulesWaitTimeoutError" in logs.text) is deferrable  # sync: Airflow's own timeout, then on_kill


def test_on_kill_leaves_the_run_when_told(brms: Brms) -> None:
    run_id = brms.start("slow")["id"]
    op = deploy_op(brms, "slow", cancel_on_kill=False)
    op._run_id = run_id
    op.on_kill()
    assert brms.run(run_id)["status"] == "in_progress" and brms.cancels(run_id) == []


def test_cancel_run_operator(brms: Brms, emulator: BuddyEmulator, logs: LogCapture) -> None:
    going, done = brms.start("slow")["id"], brms.start("dev")["id"]
    emulator.advance(5)
    with new_dag() as dag:

        def cancel(task_id: str, run_id: str, comment: str, **kwargs: Any) -> GoRulesCancelRunOperator:
            return GoRulesCancelRunOperator(task_id=task_id, project_id=brms.project_id, run_id=run_id, comment=comment, **kwargs)

        @task(task_id="pick")
        def pick() -> str:
            return going

        pick() >> cancel("cancel", "{{ ti.xcom_pull(task_ids='pick') }}", "Rejected by {{ dag.dag_id }}")
        cancel("empty_comment", going, "{{ '' }}")
        cancel("finished", done, "too late")
        cancel("finished_strict", done, "too late", fail_if_finished=True)
    dag_run = run_dag(dag)
    assert states(dag_run) == {
        "pick": "success",
        "cancel": "success",
        "empty_comment": "failed",
        "finished": "success",
        "finished_strict": "failed",
    }
    assert [r.json for r in brms.cancels(going)] == [{"comment": f"Rejected by {dag.dag_id}"}] and brms.cancels(done) == []
    assert xcom(dag_run, "cancel")["status"] == "cancelled" and xcom(dag_run, "finished")["status"] == "completed"
    assert "comment is required" in logs.text and "nothing to cancel (fail_if_finished=True)" in logs.text


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"comment": None}, "comment is required"),
        ({"comment": "  "}, "comment is required"),
        ({"comment": "x", "run_id": ""}, "run_id must be a non-empty string"),
    ],
)
def test_cancel_operator_parse_time_checks(kwargs: dict[str, Any], needle: str) -> None:
    args = {"task_id": "c", "project_id": "p", "run_id": "r", **kwargs}
    with pytest.raises(ValueError, match=needle):
        GoRulesCancelRunOperator(**args)


def test_comment_must_be_given_to_cancel_operator() -> None:
    with pytest.raises(ValueError, match="comment is required"):
        GoRulesCancelRunOperator(task_id="c", project_id="p", run_id="r")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"on_approval": "approve"}, "no call to approve"),
        ({"release_id": ""}, "release_id must be a non-empty string"),
        ({"environment_id": None}, "environment_id must be a non-empty string"),
        ({"poll_interval": 0}, "poll_interval must be a positive number"),
        ({"comment": 5}, "comment must be a string"),
    ],
)
def test_deploy_operator_parse_time_checks(kwargs: dict[str, Any], needle: str) -> None:
    args = {"task_id": "d", "project_id": "p", "release_id": "r", "environment_id": "e", **kwargs}
    with pytest.raises(ValueError, match=needle):
        GoRulesDeployReleaseOperator(**args)


def test_an_oldest_first_listing_is_recognised() -> None:
    from airflow_provider_buddy.models.gorules import Run
    from airflow_provider_buddy.utils.gorules_reattach import looks_oldest_first, newest_first

    old, new = Run(id="a", createdAt="2026-01-01T00:00:00.000Z"), Run(id="b", createdAt="2026-01-02T00:00:00Z")
    assert looks_oldest_first([old, new]) and not looks_oldest_first([new, old]) and not looks_oldest_first([])
    assert [r.id for r in newest_first([old, Run(id="c"), new])] == ["b", "a", "c"]


# ---- found by the GoRules fault soak (tests/reliability/test_gorules_soak.py), pinned down ---------------
@pytest.mark.parametrize("status", [502, 500])
def test_a_5xx_answer_to_a_processed_deploy_finds_the_run(brms: Brms, emulator: BuddyEmulator, status: int, logs: LogCapture) -> None:
    """A 5xx after the BRMS created the run (a proxy's 502, a crash after the insert) is a lost answer, not a failed deploy:
    failing would leave the run going unwatched (no retries) or, once it ended, have a retry deploy the release again."""
    emulator.add_fault(Fault(kind="status", status=status, method="POST", path=r"/releases/deploy$", when="after"))
    with new_dag() as dag:
        deploy_op(brms, "dev")
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and dag_run.get_task_instance("deploy").try_number == 1
    assert xcom(dag_run, "deploy") == run["id"] and run["status"] == "completed" and len(brms.deploys()) == 1
    assert "the deploy did reach GoRules" in logs.text


def test_a_5xx_before_the_deploy_was_processed_still_fails_the_try(brms: Brms, emulator: BuddyEmulator) -> None:
    emulator.add_fault(Fault(kind="status", status=503, method="POST", path=r"/releases/deploy$"))
    with new_dag() as dag:
        deploy_op(brms, "dev", wait_for_completion=False)
    dag_run = run_dag(dag)
    assert states(dag_run) == {"deploy": "failed"} and emulator.gorules_runs(brms.project_id) == [] and len(brms.deploys()) == 1


def test_the_search_after_a_lost_deploy_answer_outlasts_transient_trouble(brms: Brms, emulator: BuddyEmulator) -> None:
    """The deploy's answer is lost, then listing the runs hits a 5xx streak longer than the hook's retries."""
    emulator.add_fault(Fault(kind="drop", method="POST", path=r"/releases/deploy$", when="after"))
    emulator.add_fault(Fault(kind="delay", delay=0.01, method="GET", path=r"/runs$"))  # the listing before the deploy passes
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=r"/runs$", times=6))
    with new_dag() as dag:
        deploy_op(brms, "dev", wait_for_completion=False, reattach_on_retry=False)
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and xcom(dag_run, "deploy") == run["id"] and len(brms.deploys()) == 1


def test_a_run_named_by_id_that_cannot_be_read_yet_is_waited_on(emulator: BuddyEmulator) -> None:
    """The deploy answered ``{"id"}``; reading that run fails for longer than the hook's retries: wait on it by its id."""
    brms = make_brms(emulator, deploy_answer="id")
    emulator.add_fault(Fault(kind="status", status=502, method="GET", path=r"/runs/[^/]+$", times=5))
    with new_dag() as dag:
        deploy_op(brms, "dev")
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and dag_run.get_task_instance("deploy").try_number == 1
    assert xcom(dag_run, "deploy") == run["id"] and xcom(dag_run, "deploy", "summary")["status"] == "completed"


@MODES
def test_transient_trouble_while_waiting_never_fails_the_deploy(
    brms: Brms, emulator: BuddyEmulator, deferrable: bool, logs: LogCapture
) -> None:
    """Reads of the run fail for longer than the hook's retries (the first look included): keep waiting. Failing would
    have a retry deploy the release a second time once the run ended (or leave it unwatched without retries)."""
    emulator.add_fault(Fault(kind="status", status=503, method="GET", path=r"/runs/[^/]+$", times=6))
    with new_dag() as dag:
        deploy_op(brms, "qa", deferrable=deferrable, retries=1, retry_delay=timedelta(0))
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "success"} and dag_run.get_task_instance("deploy").try_number == 1
    assert xcom(dag_run, "deploy") == run["id"] and run["status"] == "completed" and len(brms.deploys()) == 1
    assert "still waiting, looking again later" in logs.text


@pytest.mark.parametrize("when", ["before", "after"], ids=["not-applied", "applied"])
def test_on_kill_cancels_even_when_the_first_cancel_answer_is_lost(brms: Brms, emulator: BuddyEmulator, when: str) -> None:
    """The worker's cancel (execution_timeout) loses its answer: read again; cancel again only if the BRMS did not apply it."""
    emulator.add_fault(Fault(kind="drop", method="POST", path=r"/cancel$", when=when))
    with new_dag() as dag:
        deploy_op(brms, "slow", execution_timeout=timedelta(seconds=1.5))
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"deploy": "failed"} and run["status"] == "cancelled" and "[airflow:" in run["cancelledComment"]
    assert len(brms.cancels(run["id"])) == (2 if when == "before" else 1)


def test_a_retry_never_takes_another_task_instances_run(brms: Brms, emulator: BuddyEmulator, logs: LogCapture) -> None:
    """Two tasks deploy the same release to the same environment (as two runs of one DAG do); the second's first deploy is
    refused (429, nothing created). Its retry must deploy, not re-attach to the first task's run still waiting for review."""
    emulator.add_fault(Fault(kind="delay", delay=0.01, method="POST", path=r"/releases/deploy$"))  # the first task's deploy passes
    emulator.add_fault(Fault(kind="status", status=429, method="POST", path=r"/releases/deploy$"))  # the second task's first is refused
    with new_dag() as dag:
        first, second = (
            GoRulesDeployReleaseOperator(
                task_id=task_id,
                project_id=brms.project_id,
                release_id=brms.release_id,
                environment_id=brms.env["staging"],
                on_approval="succeed",
                poll_interval=0.1,
                retries=1,
                retry_delay=timedelta(0),
            )
            for task_id in ("first", "second")
        )
        first >> second
    dag_run = run_dag(dag)
    runs = emulator.gorules_runs(brms.project_id)
    assert states(dag_run) == {"first": "success", "second": "success"} and len(runs) == 2 and len(brms.deploys()) == 3
    assert {xcom(dag_run, "first"), xcom(dag_run, "second")} == {r["id"] for r in runs}
    assert dag_run.get_task_instance("second").try_number == 2 and "Re-attaching" not in logs.text


def test_a_lost_deploy_answer_never_takes_a_run_someone_else_started(brms: Brms, emulator: BuddyEmulator) -> None:
    """The deploy POST is dropped before the BRMS saw it; meanwhile someone starts the same release to the same environment in
    the BRMS UI. This BRMS shows deploy comments (an earlier Airflow deploy's run carries its marker), so that unmarked new
    run is not the task's: the task fails (nothing was deployed) instead of reporting someone else's run as its own."""
    brms.start("dev", comment="Nightly rules [airflow:0123456789abcdef]")
    emulator.add_fault(Fault(kind="drop", delay=0.5, method="POST", path=r"/releases/deploy$"))
    stop = threading.Event()

    def someone_else() -> None:  # starts the run while the deploy POST is held, before its connection drops
        while not stop.wait(0.005):
            if brms.deploys():
                brms.start("qa", comment="by hand")
                return

    watcher = threading.Thread(target=someone_else, daemon=True)
    watcher.start()
    with new_dag() as dag:
        deploy_op(brms, "qa", wait_for_completion=False)
    try:
        dag_run = run_dag(dag)
    finally:
        stop.set()
        watcher.join()
    [by_hand, _] = emulator.gorules_runs(brms.project_id)
    assert by_hand["jobs"][0]["data"] == {"comment": "by hand"} and len(brms.deploys()) == 1
    assert states(dag_run) == {"deploy": "failed"} and xcom(dag_run, "deploy", "run_id") is None


def test_a_retry_finds_its_run_beyond_the_newest_hundred(brms: Brms, emulator: BuddyEmulator, logs: LogCapture) -> None:
    """A busy project: more than a page of search depth (100) of runs were created between the first try and the retry.
    The retry must still find the run its first try deployed (it once deployed the release a second time)."""
    emulator.add_fault(Fault(kind="status", status=404, method="GET", path=r"/runs/[^/]+$", times=1))  # the first try fails after deploying

    def busy_brms(context: Any) -> None:
        for n in range(110):
            brms.start("dev", comment=f"tenant {n}")

    with new_dag() as dag:
        deploy_op(brms, "staging", on_approval="succeed", retries=1, retry_delay=timedelta(0), on_retry_callback=busy_brms)
    dag_run = run_dag(dag)
    mine = [run for run in emulator.gorules_runs(brms.project_id) if run["jobs"][0]["environment"]["key"] == "staging"]
    assert len(emulator.gorules_runs(brms.project_id)) == 111 and len(mine) == 1 and len(brms.deploys()) == 1
    assert states(dag_run) == {"deploy": "success"} and dag_run.get_task_instance("deploy").try_number == 2
    assert xcom(dag_run, "deploy") == mine[0]["id"] and "Re-attaching to GoRules run" in logs.text


@pytest.mark.parametrize("template", [None, "https://brms.example.com/p/{project_id}/runs/{run_id}"], ids=["brms-home", "template"])
def test_the_gorules_run_link(brms: Brms, emulator: BuddyEmulator, monkeypatch: pytest.MonkeyPatch, template: str | None) -> None:
    """Deploy, sensor and cancel tasks show a "GoRules run" link: the connection's run_page template, else the BRMS."""
    from tests.gorules_support import gorules_connection_json

    extra = {"run_page": template} if template else {}
    monkeypatch.setenv("AIRFLOW_CONN_GORULES_DEFAULT", gorules_connection_json(emulator.url, **extra))
    with new_dag() as dag:
        deploy = deploy_op(brms, "dev")
        GoRulesCancelRunOperator(
            task_id="cancel", project_id=brms.project_id, run_id="{{ ti.xcom_pull(task_ids='deploy') }}", comment="done"
        )
        deploy >> dag.get_task("cancel")
    dag_run = run_dag(dag)
    [run] = emulator.gorules_runs(brms.project_id)
    expected = template.format(project_id=brms.project_id, run_id=run["id"]) if template else emulator.url
    for task_id in ("deploy", "cancel"):
        assert xcom(dag_run, task_id, "run_page_url") == expected
        assert xcom(dag_run, task_id, "_link_GoRulesRunLink") == expected
