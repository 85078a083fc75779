"""JSON views of emulated objects, shaped like the Buddy.Works API's documented responses."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from typing import Any

from airflow_provider_buddy.testing.buddy.runs import BUDDY_USER_ID, WAITING, ActionRun, Execution
from airflow_provider_buddy.testing.buddy.specs import ActionSpec, PipelineSpec, VariableSpec
from airflow_provider_buddy.testing.clock import iso

HTML_BASE = "https://app.buddy.works"
MASK = "***"
_MEMBERS: dict[int, tuple[str, str]] = {
    1: ("Emulator Bot", "bot@buddy-emulator.invalid"),
    BUDDY_USER_ID: ("Jane Operator", "jane@buddy-emulator.invalid"),
}


@dataclass(frozen=True)
class Site:
    """
    Where the emulated objects live.

    :param api_base: the emulator's API root URL (with the base path).
    :param workspace: the workspace's name.
    """

    api_base: str
    workspace: str

    def api(self, path: str) -> str:
        """The API URL of a path under the workspace."""
        return f"{self.api_base}/workspaces/{self.workspace}{path}"

    def html(self, path: str) -> str:
        """The web URL of a path under the workspace."""
        return f"{HTML_BASE}/{self.workspace}{path}"


def member(site: Site, member_id: int) -> dict[str, Any]:
    """A member (creator, committer, approver)."""
    name, email = _MEMBERS.get(member_id, (f"Member {member_id}", f"member{member_id}@buddy-emulator.invalid"))
    avatar = hashlib.md5(email.encode(), usedforsecurity=False).hexdigest()
    return {
        "url": site.api(f"/members/{member_id}"),
        "html_url": site.html(f"/-/profile/{member_id}"),
        "id": member_id,
        "name": name,
        "avatar_url": f"{HTML_BASE}/image-server/user/0/0/0/0/0/0/{member_id}/{avatar}/w/32/32/AVATAR.png",
        "email": email,
        "admin": member_id == 1,
        "workspace_owner": member_id == 1,
    }


def full_revision(project: str, revision: str) -> str:
    """A 40-hex commit id for a revision: hex prefixes are kept, anything else (e.g. HEAD) is hashed."""
    digest = hashlib.sha1(f"{project}:{revision}".encode(), usedforsecurity=False).hexdigest()
    text = revision.lower()
    if text and len(text) <= 40 and all(c in string.hexdigits for c in text):
        return text + digest[len(text) :]
    return digest


def revision_view(site: Site, project: str, revision: str, moment: float) -> dict[str, Any]:
    """A commit object."""
    sha = full_revision(project, revision)
    committer = member(site, 1)
    return {
        "url": site.api(f"/projects/{project}/repository/commits/{sha}"),
        "html_url": site.html(f"/{project}/repository/commit/{sha}"),
        "revision": sha,
        "author_date": iso(moment),
        "commit_date": iso(moment),
        "message": f"Emulated commit {sha[:7]}\n",
        "committer": committer,
        "author": committer,
    }


def _ref_view(site: Site, project: str, kind: str, name: str, default: bool) -> dict[str, Any]:
    segment = {"branch": "branches", "tag": "tags", "pull_request": "pull-requests"}[kind]
    view: dict[str, Any] = {
        "url": site.api(f"/projects/{project}/repository/{segment}/{name}"),
        "html_url": site.html(f"/{project}/repository/{kind.replace('_', '-')}/{name}"),
        "name": name,
    }
    if kind == "branch":
        view["default"] = default
    return view


def variable_view(variable: VariableSpec) -> dict[str, Any]:
    """A variable; encrypted values are masked."""
    return {
        "key": variable.key,
        "value": MASK if variable.encrypted else variable.value,
        "type": "VAR",
        "encrypted": variable.encrypted,
        "settable": False,
        "description": variable.description,
    }


def action_view(site: Site, project: str, pipeline_id: int, action: ActionSpec, last_status: str) -> dict[str, Any]:
    """A pipeline's action (short form)."""
    return {
        "url": site.api(f"/projects/{project}/pipelines/{pipeline_id}/actions/{action.id}"),
        "html_url": site.html(f"/{project}/pipelines/pipeline/{pipeline_id}/action/{action.id}/edit"),
        "id": action.id,
        "name": action.name,
        "type": action.type,
        "trigger_time": "ON_EVERY_EXECUTION",
        "run_next": "WAIT_ON_SUCCESS",
        "disabled": False,
        "timeout": None,
        "ignore_errors": False,
        "last_execution_status": last_status,
    }


def pipeline_view(
    site: Site,
    project: str,
    pipeline: PipelineSpec,
    last: Execution | None,
    created: float,
    *,
    with_actions: bool = True,
) -> dict[str, Any]:
    """A pipeline, shaped like the clear-cache response (``with_actions`` adds its actions)."""
    last_status = last.status if last is not None else "INITIAL"
    revision = (last.options.to_revision or "HEAD") if last is not None else None
    view: dict[str, Any] = {
        "url": site.api(f"/projects/{project}/pipelines/{pipeline.id}"),
        "html_url": site.html(f"/{project}/pipelines/pipeline/{pipeline.id}"),
        "id": pipeline.id,
        "identifier": pipeline.identifier,
        "name": pipeline.name,
        "definition_source": "LOCAL",
        "git_config_ref": "NONE",
        "refs": list(pipeline.refs),
        "events": [{"type": "PUSH", "refs": list(pipeline.refs)}],
        "priority": "NORMAL",
        "disabled": pipeline.disabled,
        "last_execution_status": last_status,
        "last_execution_revision": full_revision(project, revision) if revision is not None else None,
        "create_date": iso(created),
        "always_from_scratch": False,
        "ignore_fail_on_project_status": False,
        "strict_context": False,
        "no_skip_to_most_recent": False,
        "terminate_stale_runs": False,
        "auto_clear_cache": False,
        "paused": False,
        "fetch_all_refs": False,
        "fail_on_prepare_env_warning": True,
        "concurrent_pipeline_runs": False,
        "do_not_create_commit_status": False,
        "stale": False,
        "waiting_for_push": False,
        "resources": "DEFAULT",
        "git_changeset_base": "LATEST_RUN",
        "filesystem_changeset_base": "DATE_MODIFIED",
        "cpu": "X64",
        "description_required": False,
    }
    if pipeline.disabled_reason:
        view["disabled_reason"] = pipeline.disabled_reason
    if with_actions:
        view["project"] = {
            "url": site.api(f"/projects/{project}"),
            "html_url": site.html(f"/projects/{project}"),
            "name": project,
            "display_name": project,
            "status": "ACTIVE",
        }
        view["creator"] = member(site, 1)
        view["cache_scope"] = "PIPELINE"
        view["variables"] = []
        view["permissions"] = {"others": "DEFAULT"}
        view["actions"] = [action_view(site, project, pipeline.id, a, last_status) for a in pipeline.actions]
    return view


def execution_url(site: Site, execution: Execution) -> str:
    """The API URL of an execution."""
    return site.api(f"/projects/{execution.project}/pipelines/{execution.pipeline.id}/executions/{execution.id}")


def execution_html_url(site: Site, execution: Execution) -> str:
    """The web page of an execution."""
    pipeline_id = execution.pipeline.id
    return site.html(f"/{execution.project}/pipelines/pipeline/{pipeline_id}/execution/{execution.object_id}")


def _progress(run: ActionRun, now: float) -> int:
    if run.status in ("SUCCESSFUL", "FAILED", "TERMINATED"):
        return 100
    if run.status != "INPROGRESS" or run.start is None:
        return 0
    if run.spec.duration <= 0:
        return 99
    return max(0, min(99, int((now - run.start) / run.spec.duration * 100)))


def action_execution_view(site: Site, execution: Execution, run: ActionRun, now: float) -> dict[str, Any]:
    """One action execution of a run."""
    url = f"{execution_url(site, execution)}/action_executions/{run.action_execution_id}"
    view: dict[str, Any] = {
        "url": url,
        "html_url": f"{execution_html_url(site, execution)}/?actionExecutionId={run.action_execution_id}",
        "action_execution_id": run.action_execution_id,
        "start_date": iso(run.start),
        "finish_date": iso(run.finish),
        "status": run.status,
        "progress": _progress(run, now),
        "action": action_view(site, execution.project, execution.pipeline.id, run.spec, run.status),
        "passed_variables": [variable_view(v) for v in run.passed_variables],
        "outputted_variables": [variable_view(v) for v in run.spec.outputted_variables] if run.status == "SUCCESSFUL" else [],
    }
    if run.error_message is not None:
        view["error_message"] = run.error_message
    if run.approver_id is not None:
        view["approver_id"] = run.approver_id
        view["approver"] = member(site, run.approver_id)
        view["approval_date"] = iso(run.approval_date)
    return view


def short_id(*parts: str) -> str:
    """A short alphanumeric id for an object the emulator only knows by name (environments, packages)."""
    digest = hashlib.sha1(":".join(parts).encode(), usedforsecurity=False).digest()
    alphabet = string.ascii_letters + string.digits
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:8])


def environment_view(site: Site, project: str, environment: str) -> dict[str, Any]:
    """The environment a run names, shaped like seed 002's ``{url, html_url, name, identifier, id, scope}`` (the emulator
    knows environments by the request's text only: it is both name and identifier)."""
    env_id = short_id(project, "environment", environment)
    return {
        "url": site.api(f"/projects/{project}/environments/{env_id}"),
        "html_url": site.html(f"/{project}/environments/environment/{env_id}"),
        "name": environment,
        "identifier": environment,
        "id": env_id,
        "scope": "PROJECT",
    }


def package_view(site: Site, name: str) -> dict[str, Any]:
    """The top-level ``package`` of a run with a package version (seed 002)."""
    package_id = short_id("package", name)
    return {
        "url": site.api(f"/packages/{package_id}"),
        "html_url": site.html(f"/-/packages/{package_id}/versions"),
        "id": package_id,
        "type": "CONTAINER",
        "name": name,
        "identifier": name,
        "scope": "WORKSPACE",
        "size": 1048576000,
    }


def package_version_view(site: Site, name: str, version: str, moment: float) -> dict[str, Any]:
    """A run's ``package_version`` (seed 002): it does not name its package, the sibling ``package`` does."""
    package_id, version_id = short_id("package", name), short_id("package", name, version)
    return {
        "url": site.api(f"/packages/{package_id}/versions/{version_id}"),
        "html_url": site.html(f"/-/packages/{package_id}/versions/{version_id}"),
        "version_url": f"https://{version}-{name}.files-pkg-1.registry.sh/".lower().replace("_", "-"),
        "id": version_id,
        "version": version,
        "size": 1048576,
        "created_date": iso(moment),
    }


def execution_view(site: Site, execution: Execution, now: float, last: Execution | None) -> dict[str, Any]:
    """An execution with its action executions, shaped like the run response."""
    options = execution.options
    project = execution.project
    view: dict[str, Any] = {
        "url": execution_url(site, execution),
        "html_url": execution_html_url(site, execution),
        "id": execution.id,
        "start_date": iso(execution.start_date),
        "finish_date": iso(execution.finish_date),
        "triggered_on": execution.triggered_on,
        "priority": options.priority,
        "refresh": options.refresh,
        "clear_cache": options.clear_cache,
        "status": execution.status,
        "comment": options.comment,
    }
    if options.tag is not None:
        view["tag"] = _ref_view(site, project, "tag", options.tag, False)
    elif options.pull_request is not None:
        view["pull_request"] = _ref_view(site, project, "pull_request", options.pull_request, False)
    else:
        default_branch = execution.pipeline.default_branch
        branch = options.branch or default_branch
        view["branch"] = _ref_view(site, project, "branch", branch, branch == default_branch)
    view["to_revision"] = revision_view(site, project, options.to_revision or "HEAD", execution.created)
    if options.from_revision is not None:
        view["from_revision"] = revision_view(site, project, options.from_revision, execution.created)
    view["creator"] = member(site, execution.creator_id)
    if options.environment is not None:
        view["environment"] = environment_view(site, project, options.environment)
    if options.package_version is not None:
        name, _, version = options.package_version.partition(":")
        view["package"] = package_view(site, name)
        view["package_version"] = package_version_view(site, name, version or "latest", execution.created)
    if options.delay_until is not None:
        view["delay_until"] = iso(options.delay_until)
    view["pipeline"] = pipeline_view(site, project, execution.pipeline, last, execution.created, with_actions=False)
    view["variables"] = [variable_view(v) for v in options.variables]
    view["action_executions"] = [action_execution_view(site, execution, run, now) for run in execution.actions]
    return view


def log_lines(run: ActionRun, now: float) -> list[str]:
    """The action execution's log so far: its lines in proportion to its progress, then how it ended."""
    lines = run.spec.log_lines()
    if run.status in ("INITIAL", "NOT_EXECUTED", "SKIPPED") or run.start is None:
        return []
    if run.status == "SUCCESSFUL" or run.status in WAITING:
        return lines
    if run.status == "FAILED":
        return [*lines, f"ERROR: {run.error_message}"]
    end = now if run.status == "INPROGRESS" else (run.finish or now)
    fraction = 1.0 if run.spec.duration <= 0 else (end - run.start) / run.spec.duration
    shown = lines[: int(len(lines) * max(0.0, min(1.0, fraction)))]
    if run.status == "TERMINATED":
        shown.append("Execution terminated")
    return shown
