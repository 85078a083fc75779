"""
Scenario definitions for the emulator: which Buddy.Works projects and pipelines and which GoRules BRMS
projects exist, and how their runs play out.

A scenario is a JSON document (or the equivalent ``dict``)::

    {
      "workspace": "acme",                # optional, default "acme"
      "token": "demo-token",              # optional, default "test-token"
      "projects": [
        {
          "name": "web",                  # the project's name ID, used in URLs
          "display_name": "Web",          # optional
          "pipelines": [
            {
              "id": 1,                    # numeric pipeline id
              "identifier": "build",      # human-readable id
              "name": "Build",            # optional, defaults to the identifier
              "actions": [                # run in this order
                {"id": 10, "name": "Compile", "type": "BUILD", "duration": 2,
                 "log": ["line 1", "line 2"],
                 "outputted_variables": [{"key": "VERSION", "value": "1.2.3"}]},
                {"id": 11, "name": "Approve prod", "type": "WAIT_FOR_APPLY"},
                {"id": 12, "name": "Release notes", "type": "WAIT_FOR_VARIABLES",
                 "variables": [{"key": "NOTES", "value": "default"}]},
                {"id": 13, "name": "Deploy", "type": "BUILD", "duration": 1}
              ],
              "outcome": "SUCCESSFUL",    # SUCCESSFUL | FAILED | TERMINATED | SKIPPED | NOT_EXECUTED
              "fail_action": null,        # FAILED only: id of the action that fails (default: last non-wait one)
              "error_message": null,      # FAILED only: the failing action's error_message
              "wait_shown_on": "execution",  # or "action": the execution stays INPROGRESS while an action waits
              "enqueued_for": 0,          # emulated seconds a new run stays ENQUEUED
              "retry_outcome": "SUCCESSFUL",  # outcome of a RETRY of a FAILED/TERMINATED run
              "disabled": false,          # a disabled pipeline refuses runs (400)
              "disabled_reason": null,
              "refs": ["refs/heads/main"], # the first ref gives the default branch
              "hidden": false             # hidden by visibility settings: not in the pipelines list (found by id/identifier)
            }
          ]
        }
      ],
      "gorules": {                        # optional: the GoRules BRMS, served by the same server and token
        "projects": [
          {
            "name": "pricing",            # optional, default "rules"
            "id": "11111111-1111-4111-8111-111111111111",  # optional, default a new uuid
            "environments": [             # in workflow order; default dev, staging (review), production (review)
              "dev",                      # a plain key: {"key": "dev"}
              {"key": "staging",          # default env<n>
               "name": "Staging",         # default: the key, capitalised
               "id": "22222222-2222-4222-8222-222222222202",  # default a new uuid
               "review": true,            # a deployment waits for a reviewer (default false)
               "duration": 5,             # emulated seconds a deployment takes (default 1)
               "fails": false,            # a deployment ends in failure (default false) ...
               "error": "S3 bucket rules-prod is not reachable",  # ... with this event text
               "change_request": false,   # a deploy through the API makes a pending change request instead of a run
               "approval_mode": null}     # approvalMode as listed (default from review / change_request)
            ],
            "releases": [                 # published releases, oldest first
              {"name": "Pricing rules", "version": "1.4.0",
               "id": "33333333-3333-4333-8333-333333333301",  # default a new uuid
               "description": ""}
            ],
            "deploy_answer": "run",       # the deploy call answers: "run" (the run, or the change request it made),
                                          # "id" ({"id"}) or "empty" ({})
            "comment_visible": true       # a deploy comment shows in the job's data
          }
        ]
      }
    }

Actions: ``type`` is any Buddy action type. ``WAIT_FOR_APPLY`` (approval, answered with APPLY),
``WAIT_FOR_VARIABLES`` ("pass arguments", asking for ``variables`` whose ``value`` is the default; APPLY_VARIABLES),
``SET_VARIABLES`` (WAITING_FOR_SETTABLE_VARIABLES; SET_VARIABLES) and ``APPROVE_VT`` (a visual-test session,
WAITING_FOR_VT_SESSION; APPROVE_VT) block until answered; every other type runs for ``duration`` emulated seconds
(default 1). NOT_EXECUTED ends a run without running any action. ``log`` holds the action's log lines (a
default pair is made up when omitted); ``outputted_variables`` appear on the action execution once it
succeeds. Outcomes TERMINATED and SKIPPED give the execution that status after all actions ran; FAILED
makes ``fail_action`` end FAILED and the actions after it NOT_EXECUTED.

GoRules: a run deploys a release to its environments in order; an environment with ``review`` stops the run
in ``waiting`` until a reviewer answers (``review_in_gorules``, or ``POST /__emulator__/gorules/.../review``).
Ids are free text (the BRMS uses uuids); fixed ones let a DAG's params name them before the emulator starts.
Environment keys, environment ids and release ids are unique within a project, project ids within the scenario.

Unknown keys anywhere are errors (they are usually typos), reported with the path of the bad key, e.g.
``invalid scenario: gorules.projects.0.environments.1.review: Input should be a valid boolean``.

The shipped ``scenarios/demo.json`` (:data:`airflow_provider_buddy.testing.DEMO_SCENARIO`) serves Buddy project
"web" (four pipelines) and GoRules project "pricing" with fixed ids, for ``example_dags/gorules_release.py``:
``project_id`` 11111111-1111-4111-8111-111111111111, ``environment_id`` 22222222-2222-4222-8222-222222222202
(staging, review required), ``release_id`` 33333333-3333-4333-8333-333333333301 ("Pricing rules" 1.4.0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from airflow_provider_buddy.testing._specs import ScenarioError, Spec, validate
from airflow_provider_buddy.testing.buddy.specs import ProjectSpec
from airflow_provider_buddy.testing.gorules.specs import GoRulesSpec

__all__ = ["Scenario", "ScenarioError", "load_scenario"]


class Scenario(Spec):
    """
    A whole emulated set-up: the Buddy workspace and the GoRules BRMS.

    :param workspace: the Buddy workspace's name (as in URLs).
    :param token: the only token the emulator accepts (for both services).
    :param projects: the Buddy workspace's projects.
    :param gorules: the GoRules BRMS's projects.
    """

    workspace: str = Field(default="acme", min_length=1)
    token: str = Field(default="test-token", min_length=1)
    projects: list[ProjectSpec] = Field(default_factory=list)
    gorules: GoRulesSpec = Field(default_factory=GoRulesSpec)


def load_scenario(source: Scenario | Mapping[str, Any] | str | Path) -> Scenario:
    """
    Load a scenario from a dict, a JSON file path, or pass a Scenario through.

    :param source: the scenario, a mapping of its JSON form, or the path of a JSON file.
    :raises ScenarioError: when the file cannot be read or the scenario is invalid.
    """
    if isinstance(source, Scenario):
        return source
    if isinstance(source, (str, Path)):
        try:
            data: Any = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ScenarioError(f"cannot read scenario file {source}: {exc}") from exc
    else:
        data = dict(source)
    return validate(Scenario, data, "scenario")
