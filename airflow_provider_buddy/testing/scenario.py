"""
Scenario definitions for the Buddy.Works emulator: which projects and pipelines exist and how runs play out.

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
              "outcome": "SUCCESSFUL",    # SUCCESSFUL | FAILED | TERMINATED | SKIPPED
              "fail_action": null,        # FAILED only: id of the action that fails (default: last non-wait one)
              "error_message": null,      # FAILED only: the failing action's error_message
              "wait_shown_on": "execution",  # or "action": the execution stays INPROGRESS while an action waits
              "enqueued_for": 0,          # emulated seconds a new run stays ENQUEUED
              "retry_outcome": "SUCCESSFUL",  # outcome of a RETRY of a FAILED/TERMINATED run
              "disabled": false,          # a disabled pipeline refuses runs (400)
              "disabled_reason": null,
              "refs": ["refs/heads/main"]  # the first ref gives the default branch
            }
          ]
        }
      ]
    }

Actions: ``type`` is any Buddy action type. ``WAIT_FOR_APPLY`` (approval) and ``WAIT_FOR_VARIABLES``
("pass arguments", asking for ``variables`` whose ``value`` is the default) block until approved; every
other type runs for ``duration`` emulated seconds (default 1). ``log`` holds the action's log lines (a
default pair is made up when omitted); ``outputted_variables`` appear on the action execution once it
succeeds. Outcomes TERMINATED and SKIPPED give the execution that status after all actions ran; FAILED
makes ``fail_action`` end FAILED and the actions after it NOT_EXECUTED.

Unknown keys anywhere are errors (they are usually typos), reported with the path of the bad key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from airflow_provider_buddy.testing._specs import ScenarioError, Spec, validate
from airflow_provider_buddy.testing.buddy.specs import ProjectSpec

__all__ = ["Scenario", "ScenarioError", "load_scenario"]


class Scenario(Spec):
    """
    A whole emulated workspace.

    :param workspace: the workspace's name (as in URLs).
    :param token: the only token the emulator accepts (for both services).
    :param projects: the workspace's projects.
    """

    workspace: str = Field(default="acme", min_length=1)
    token: str = Field(default="test-token", min_length=1)
    projects: list[ProjectSpec] = Field(default_factory=list)


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
