"""Finding the GoRules run a deploy created, or the one an earlier try of the task created (no I/O here).

The deploy call's answer is not documented and the BRMS has no idempotency key, so a run is recognised
by what it is about (this release, this environment), by the task's marker when the deploy comment
shows up in the run (:mod:`airflow_provider_buddy.utils.reattach`), and by not having existed before.

A run that carries another task instance's marker is never taken. When deploy comments show up in this
BRMS's runs (some run carries a marker), a run without this task's marker is not this task's either: the
weaker signs (same release and environment, new, created during this DAG run) are only used where the
BRMS does not show deploy comments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from airflow_provider_buddy.models.gorules import Run
from airflow_provider_buddy.models.status import StatusGroup
from airflow_provider_buddy.utils.reattach import MARKER_PREFIX, marked_try


def created_at(run: Run) -> datetime | None:
    """The run's ``createdAt`` as an aware datetime, or None when absent or unreadable."""
    text = (run.created_at or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def newest_first(runs: Iterable[Run]) -> list[Run]:
    """Runs sorted newest first by ``createdAt`` (unreadable dates last, original order kept among equals)."""

    def order(pair: tuple[int, Run]) -> tuple[bool, float, int]:
        moment = created_at(pair[1])
        return (moment is None, -moment.timestamp() if moment is not None else 0.0, pair[0])

    return [run for _, run in sorted(enumerate(runs), key=order)]


def looks_oldest_first(runs: list[Run]) -> bool:
    """True when a listing runs from old to new (so a truncated one may miss the newest runs)."""
    first, last = (created_at(runs[0]), created_at(runs[-1])) if runs else (None, None)
    return first is not None and last is not None and first < last


def reaches_back(runs: Iterable[Run], since: datetime | None) -> bool:
    """True when a listing holds a run created before ``since`` (or ``since`` is None, or no run's date can be read):
    every run created since then is in it."""
    if since is None:
        return True
    moments = [moment for moment in (created_at(run) for run in runs) if moment is not None]
    return not moments or min(moments) < since


def about(run: Run, release_id: str, environment_id: str) -> bool:
    """True when ``run`` deploys ``release_id`` to ``environment_id`` (a run without jobs is given the benefit of the doubt)."""
    if run.release_id is not None and run.release_id != release_id:
        return False
    return not run.jobs or run.targets_environment(environment_id)


def marked(run: Run, marker: str) -> bool:
    """True when the task's marker shows up anywhere in the run (name, job events or data)."""
    return any(marker in text for text in run.texts())


def _deploy_texts(run: Run) -> list[str]:
    """Where the deploy comment may show up: every free text but the cancel comment (an Airflow cancel names its task too)."""
    texts = run.texts()
    if run.cancelled_comment and run.cancelled_comment in texts:
        texts.remove(run.cancelled_comment)
    return texts


def foreign(run: Run, marker: str) -> bool:
    """True when the run's deploy comment carries a task marker that is not ``marker``: another task instance deployed it."""
    texts = _deploy_texts(run)
    return any(MARKER_PREFIX in text for text in texts) and not any(marker in text for text in texts)


def shows_markers(runs: Iterable[Run]) -> bool:
    """True when deploy comments show up in these runs (one of them carries a task marker)."""
    return any(MARKER_PREFIX in text for run in runs for text in _deploy_texts(run))


def marked_try_of(run: Run, marker: str) -> int | None:
    """The try of this task instance that deployed ``run``, read from its deploy comment (None when not shown)."""
    for text in _deploy_texts(run):
        found = marked_try(text, marker)
        if found is not None:
            return found
    return None


def earlier_try_run(
    runs: Iterable[Run],
    release_id: str,
    environment_id: str,
    marker: str,
    *,
    retry_since: datetime | None,
    generation: tuple[int, int] | None = None,
) -> tuple[Run | None, str]:
    """
    The run an earlier try of this task instance created that this try carries on with, and how it was recognised:
    a run still going, or — the newest run this task deployed — one that completed, deployed by an earlier try of
    this generation (Airflow failed that try after the run was done, e.g. its defer race: deploying again would deploy
    the release twice). A run of this generation that failed or was cancelled is not carried on with: the retry
    deploys again.

    :param runs: the project's recent runs.
    :param release_id: the release the task deploys.
    :param environment_id: the environment it deploys to.
    :param marker: the task instance's marker (found when the BRMS shows the deploy comment).
    :param retry_since: on a retry, when the DAG run started: where this BRMS shows no deploy comments, a going
        run of this release to this environment created since then is taken as the earlier try's (None on a first try).
    :param generation: the first try since the task was last cleared and the running try (see
        :func:`~airflow_provider_buddy.utils.reattach.first_try_of_generation`).
    """
    runs = list(runs)
    ours = [run for run in newest_first(runs) if about(run, release_id, environment_id) and not foreign(run, marker)]
    going = [run for run in ours if not run.is_finished]
    for run in going:
        if marked(run, marker):
            return run, "its deploy comment carries this task instance's marker"
    newest_marked = next((run for run in ours if marked(run, marker)), None)
    if generation is not None and newest_marked is not None and newest_marked.status_group is StatusGroup.SUCCESS:
        first, this = generation
        started_by = marked_try_of(newest_marked, marker)
        if started_by is not None and first <= started_by < this:
            return newest_marked, f"it completed, deployed by try {started_by} of this task instance: taken as the result"
    if retry_since is not None and not shows_markers(runs):
        for run in going:
            moment = created_at(run)
            if moment is None or moment >= retry_since:
                return run, "it deploys the same release to the same environment and was created during this DAG run, by an earlier try"
    return None, ""


def new_run(runs: Iterable[Run], known_ids: set[str], release_id: str, environment_id: str, marker: str | None = None) -> Run | None:
    """
    The run a deploy just created: one about this release and environment that did not exist before, carrying
    ``marker`` when given. Without the marker, a new unmarked run is taken only when this BRMS shows no deploy
    comments (a run someone else started meanwhile is otherwise not mistaken for it).
    """
    runs = list(runs)
    fresh = [run for run in newest_first(runs) if run.id not in known_ids and about(run, release_id, environment_id)]
    if marker is not None:
        for run in fresh:
            if marked(run, marker):
                return run
        if shows_markers(runs):
            return None
    return fresh[0] if fresh else None
