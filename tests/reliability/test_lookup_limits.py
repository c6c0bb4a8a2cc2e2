"""Look up before creating again, at the edges: after a create whose answer was lost,

- GitHub: many issues filed in the repository (by anyone) between the lost answer and the retry must not hide the
  first one: the lookup pages back to the job's creation, not a fixed number of pages;
- Jira: the lookup is a JQL search, whose index lags writes; a retry before the index has the issue must wait
  (the tracker's `lookup_settle`) instead of filing a second one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.api.main import create_app
from app.context import Context, build_context
from app.db import utcnow
from app.jobs import Job
from app.worker import Worker
from tests.conftest import make_settings
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira
from tests.reliability.trackers import GITHUB_REPO, GITHUB_TARGET, JIRA_TARGET, open_postmortem, post_actions, wire
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeGitHub]]:
    with FakeJira() as jira, FakeGitHub(creates_per_minute=10**6, creates_per_hour=10**6) as github:
        github.add_repo(GITHUB_REPO, assignable={"alice"})
        yield jira, github


@pytest.fixture
def service(tmp_path: Path, tracker_mappings: Path, fakes: tuple[FakeJira, FakeGitHub]) -> Iterator[Context]:
    from app import migrations

    url = f"sqlite:///{tmp_path / 'lookup.db'}"
    migrations.upgrade(url)
    context = wire(build_context(make_settings(url, mappings=tracker_mappings)), *fakes, 2.0)
    yield context
    context.engine.dispose()


def _retry_now(context: Context, worker: Worker) -> None:
    with context.write() as session:
        session.execute(update(Job).values(run_after=utcnow()).where(Job.status == "pending"))  # type: ignore[arg-type]
    while worker.run_job():
        pass


def test_github_lost_answer_then_250_other_issues_still_one_issue(
    service: Context, fakes: tuple[FakeJira, FakeGitHub]
) -> None:
    _, github = fakes
    with TestClient(create_app(service, embedded_worker=False)) as api:
        postmortem, finding = open_postmortem(api)
        post_actions(api, postmortem["id"], finding["id"], [GITHUB_TARGET])
    github.fail_next(1, status=502, after_effect=True, path_contains="/issues", method="POST")
    worker = Worker(service)
    worker.run_job()
    for n in range(250):  # a busy repository, during the backoff (which grows to an hour)
        github.add_issue(GITHUB_REPO, title=f"someone else's issue {n}")
    _retry_now(service, worker)
    assert len([i for i in github.issues(GITHUB_REPO) if "-action-1 -->" in (i.body or "")]) == 1


def test_jira_lost_answer_with_a_lagging_search_index_still_one_issue(
    service: Context, fakes: tuple[FakeJira, FakeGitHub]
) -> None:
    jira, _ = fakes
    jira.search_lag = 5.0  # Jira's index is eventually consistent: seconds are not unusual
    with TestClient(create_app(service, embedded_worker=False)) as api:
        postmortem, finding = open_postmortem(api)
        post_actions(api, postmortem["id"], finding["id"], [JIRA_TARGET])
    jira.fail_next(1, status=502, after_effect=True, path_contains="/rest/api/2/issue")
    worker = Worker(service)
    worker.run_job()
    time.sleep(2.0)  # the first retry's backoff
    _retry_now(service, worker)
    assert len(jira.issues) == 1
