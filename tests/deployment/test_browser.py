"""Airflow's own UI, in a real browser (Playwright driving Debian's chromium), on the shared e2e deployment.

A person signs in, looks at the connection form of a ``buddy`` and a ``gorules`` connection, opens a Buddy task's
"Buddy execution" extra link, and approves a pending Buddy approval under Browse -> Required actions; the emulator's
request log shows the APPLY it caused. Screenshots go to ``tmp/test-output/e2e/screenshots/`` (never committed).

Chromium: ``/usr/bin/chromium`` from Debian (``make e2e-deps`` installs it; Playwright's own browser download is not
reachable from here), or the one ``E2E_CHROMIUM`` names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.conftest import E2E
from tests.deployment.harness import Answer, wait_until
from tests.deployment.scenarios import PATCH_PATH, marker

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def shots(e2e: E2E) -> Path:
    folder = e2e.out / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def page(e2e: E2E, shots: Path) -> Iterator[Any]:
    """A signed-in page (the sign-in form: two inputs and "Sign in")."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make e2e-deps` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(e2e.deployment.url + "/", wait_until="networkidle")
            page.get_by_role("button", name="Sign in").wait_for()  # the single-page app renders the form after load
            inputs = page.locator("input")
            if inputs.count() != 2:
                page.screenshot(path=str(shots / "00-sign-in.png"))
                pytest.fail(f"the sign-in form should have a user name and a password input, has {inputs.count()}")
            inputs.nth(0).fill("admin")
            inputs.nth(1).fill(e2e.deployment.admin_password())
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state("networkidle")
            page.get_by_role("link", name="Dags").first.wait_for()
            page.screenshot(path=str(shots / "01-signed-in.png"))
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def release_runs(e2e: E2E) -> Iterator[list[str]]:
    """The two buddy_release runs the session started for this module (nobody answers them by REST); whatever is left
    of them at the end is answered by the REST answerer, so nothing waits for ever."""
    yield e2e.browser_runs
    for run_id in e2e.browser_runs:
        e2e.answerer.plan(run_id, Answer("Approve", delay=(0.0, 0.0)))


def _form(page: Any, url: str, conn_type: str, shot: Path) -> tuple[list[str], dict[str, str | None]]:
    """Open Admin -> Connections -> Add Connection, pick the type; returns the field labels and the placeholders by input name."""
    page.goto(url + "/connections", wait_until="networkidle")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    combobox = dialog.get_by_role("combobox")
    combobox.click()
    combobox.fill(conn_type)
    page.get_by_role("option").first.wait_for()
    combobox.press("Enter")
    dialog.locator("input[name='connection_id']").fill(f"e2e_{conn_type}")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shot), full_page=True)
    labels = [re.sub(r"\s*\*$", "", text.strip()) for text in dialog.locator("label").all_inner_texts()]
    inputs = dialog.locator("input[name], textarea[name]")
    placeholders = {str(inputs.nth(i).get_attribute("name")): inputs.nth(i).get_attribute("placeholder") for i in range(inputs.count())}
    return labels, placeholders


def test_buddy_connection_form(e2e: E2E, page: Any, shots: Path) -> None:
    """The README's form: API URL, Workspace, Personal access token; no Schema, no Port."""
    labels, placeholders = _form(page, e2e.deployment.url, "buddy", shots / "02-buddy-connection-form.png")
    for wanted in ("API URL", "Workspace", "Personal access token"):
        assert wanted in labels, f"no field labelled {wanted!r}: {labels}"
    for hidden in ("Schema", "Port", "Host", "Login"):
        assert hidden not in labels, f"{hidden!r} should be hidden or relabelled: {labels}"
    assert str(placeholders.get("host") or "").startswith("https://api.buddy.works"), placeholders
    assert "workspace" in str(placeholders.get("login") or "").lower(), placeholders
    for extra in ("Request timeout (s)", "Verify TLS", "Retries"):  # the form's own fields for the connection's extra
        assert extra in labels, f"no field labelled {extra!r}: {labels}"


def test_gorules_connection_form(e2e: E2E, page: Any, shots: Path) -> None:
    """GoRules: BRMS URL and Personal access token; no Schema, Login or Port."""
    labels, placeholders = _form(page, e2e.deployment.url, "gorules", shots / "03-gorules-connection-form.png")
    for wanted in ("BRMS URL", "Personal access token"):
        assert wanted in labels, f"no field labelled {wanted!r}: {labels}"
    for hidden in ("Schema", "Login", "Port", "Host"):
        assert hidden not in labels, f"{hidden!r} should be hidden or relabelled: {labels}"
    assert "gorules.io" in str(placeholders.get("host") or ""), placeholders
    for extra in ("Request timeout (s)", "Run page URL"):
        assert extra in labels, f"no field labelled {extra!r}: {labels}"


def test_extra_link_opens_the_buddy_execution(e2e: E2E, page: Any, shots: Path, release_runs: list[str]) -> None:
    """A build task's Details tab -> Extra Links -> "Buddy execution" points at the run the task started (the emulator's URL)."""
    api = e2e.deployment.rest
    run_id = wait_until(
        lambda: next((r for r in release_runs if api.task_states("buddy_release", r).get("build") == "success"), None),
        "a browser run's build to succeed", 240, interval=1.0, alive=e2e.deployment.check_alive,
    )  # fmt: skip
    mark = marker("buddy_release", run_id, "build")
    (execution,) = [e for e in e2e.emulator.executions("web", 1) if mark in str(e.get("comment"))]
    page.goto(f"{e2e.deployment.url}/dags/buddy_release/runs/{run_id}/tasks/build", wait_until="networkidle")
    page.get_by_text("Details", exact=True).first.click()
    page.get_by_text("Extra Links").first.wait_for()
    link = page.get_by_role("link", name="Buddy execution")
    link.first.wait_for()
    page.screenshot(path=str(shots / "04-extra-link.png"), full_page=True)
    assert link.first.get_attribute("href") == execution["html_url"]
    assert api.extra_links("buddy_release", run_id, "build")["extra_links"] == {"Buddy execution": execution["html_url"]}


ASKING = ("deferred", "awaiting_input")
"""The gate's states while its request is open: on Airflow 3.3 it waits in its trigger (deferred), not parked."""


def test_approve_in_required_actions(e2e: E2E, page: Any, shots: Path, release_runs: list[str]) -> None:
    """Browse -> Required actions -> the pending Buddy approval -> Approve: Buddy gets exactly one APPLY for that run."""
    api = e2e.deployment.rest
    run_id = wait_until(
        lambda: next((r for r in release_runs if api.task_states("buddy_release", r).get("approve") in ASKING), None),
        "a browser run's gate to ask", 300, interval=1.0, alive=e2e.deployment.check_alive,
    )  # fmt: skip
    mark = marker("buddy_release", run_id, "staging")
    (execution,) = [e for e in e2e.emulator.executions("web", 2) if mark in str(e.get("comment"))]
    page.goto(e2e.deployment.url + "/required_actions", wait_until="networkidle")
    row = page.get_by_role("row").filter(has_text=run_id)
    row.first.wait_for()
    page.screenshot(path=str(shots / "05-required-actions.png"), full_page=True)
    row.first.get_by_role("link").first.click()
    approve = page.get_by_role("button", name="Approve", exact=True)
    approve.wait_for()
    page.screenshot(path=str(shots / "06-approval-request.png"), full_page=True)
    approve.click()

    def applies() -> list[dict[str, Any]]:
        return [
            r for r in e2e.emulator.requests()
            if r["method"] == "PATCH" and (m := PATCH_PATH.search(r["path"])) and m.group(2) == str(execution["id"])
            and (r.get("json") or {}).get("operation") == "APPLY"
        ]  # fmt: skip

    wait_until(applies, f"APPLY for Buddy execution {execution['id']}", 180, interval=1.0)
    page.screenshot(path=str(shots / "07-after-approve.png"), full_page=True)
    wait_until(lambda: api.dag_run("buddy_release", run_id)["state"] in ("success", "failed"), "the approved run to end", 240, interval=2.0)
    assert len(applies()) == 1
    assert api.dag_run("buddy_release", run_id)["state"] == "success", api.task_states("buddy_release", run_id)
