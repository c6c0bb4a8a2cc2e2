"""500 actions filed against the fake Jira and GitHub while one request in ten fails in a realistic way.

Faults: 5xx before anything happened, 502 after the issue was created, the answer hung past the client's timeout
(the create lands anyway), a dropped connection, 429 with Retry-After. The outcome must be exactly one issue per
action — 500 in all — each carrying its backlink, each recorded once in the ledger.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import Context, build_context
from app.worker import Worker
from tests.conftest import make_settings
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ
from tests.reliability.trackers import (
    GITHUB_REPO,
    GITHUB_TARGET,
    JIRA_TARGET,
    actions_by_id,
    github_keys_by_marker,
    jira_keys_by_label,
    job_counts,
    job_states,
    open_postmortem,
    post_actions,
    wire,
)
from tests.tracker_fixtures import tracker_mappings

__all__ = ["tracker_mappings"]
ACTIONS = 500
FAULT_RATE = 0.10
CLIENT_TIMEOUT = 0.5  # seconds; a delayed answer below waits longer than this


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeGitHub]]:
    # GitHub's secondary limit (80 creates a minute) is the connector's concern, tested elsewhere; here it would only
    # turn the run into a 60-second wait.
    with FakeJira() as jira, FakeGitHub(creates_per_minute=10**6, creates_per_hour=10**6) as github:
        github.add_repo(GITHUB_REPO, assignable={"alice"})
        yield jira, github


@pytest.fixture
def service(database_url: str, tracker_mappings: Path, fakes: tuple[FakeJira, FakeGitHub]) -> Iterator[Context]:
    context = wire(build_context(make_settings(database_url, mappings=tracker_mappings)), *fakes, CLIENT_TIMEOUT)
    yield context
    context.engine.dispose()


def _faults(jira: FakeJira, github: FakeGitHub) -> list[tuple[str, Callable[[], None]]]:
    hang = 1.5  # past both clients' timeouts (Jira 0.5 s, GitHub 1 s: PyGithub takes whole seconds)
    return [
        ("jira 503", lambda: jira.fail_next(1, status=503)),
        ("jira 500", lambda: jira.fail_next(1, status=500)),
        ("jira 502 after create", lambda: jira.fail_next(1, status=502, after_effect=True)),
        ("jira 429 Retry-After", lambda: jira.fail_next(1, status=429, retry_after=1)),
        ("jira timeout", lambda: jira.delay_next(hang)),
        ("github 503", lambda: github.fail_next(1, status=503)),
        ("github 502 after create", lambda: github.fail_next(1, status=502, after_effect=True)),
        ("github 429 Retry-After", lambda: github.fail_next(1, status=429, retry_after=1)),
        ("github reset", lambda: github.fail_next(1, status=0)),
        ("github reset after create", lambda: github.fail_next(1, status=0, after_effect=True)),
        ("github timeout after create", lambda: github.delay_next(hang)),
    ]


def test_500_actions_with_10_percent_faults_make_exactly_500_issues_with_backlinks(
    service: Context, fakes: tuple[FakeJira, FakeGitHub]
) -> None:
    jira, github = fakes
    with TestClient(create_app(service, embedded_worker=False)) as api:
        postmortem, finding = open_postmortem(api)
        targets = [JIRA_TARGET if n % 2 == 0 else GITHUB_TARGET for n in range(ACTIONS)]
        created = post_actions(api, postmortem["id"], finding["id"], targets)

        rng, faults, injected = random.Random(20260314), _faults(jira, github), Counter[str]()
        worker, busy = Worker(service), True
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            # Arm a fault before one attempt in ten (not while idle, or faults would pile up on the last retries).
            if busy and rng.random() < FAULT_RATE:
                name, inject = rng.choice(faults)
                inject()
                injected[name] += 1
            busy = worker.run_job()
            if not busy and set(job_counts(service)) <= {"done", "failed"}:
                break
            if not busy:
                time.sleep(0.05)

        states = job_states(service)
        assert sum(injected.values()) >= ACTIONS * FAULT_RATE * 0.8, injected
        assert Counter(s for s, _, _ in states.values()) == {"done": ACTIONS}, [
            (a, s) for a, s in states.items() if s[0] != "done"
        ][:10]
        assert set(job_counts(service)) == {"done"}, job_counts(service)  # the backlink repairs too
        retried = sum(1 for _, attempts, _ in states.values() if attempts > 1)
        assert retried >= 20, f"the faults should have forced retries ({injected})"

        # Exactly one issue per action, in the tracker the action names, found again by its own key.
        jira_labels, github_markers = (
            Counter(label for label, _ in jira_keys_by_label(jira)),
            Counter(m for m, _ in github_keys_by_marker(github)),
        )
        assert len(jira.issues) + len(github.issues(GITHUB_REPO)) == ACTIONS
        assert [label for label, n in (jira_labels + github_markers).items() if n > 1] == []
        by_key = dict(jira_keys_by_label(jira)) | dict(github_keys_by_marker(github))
        actions = actions_by_id(service)
        for made in created:
            action = actions[made["id"]]
            assert action.status == "open" and action.last_error is None, (action.id, action.last_error)
            assert by_key[str(action.idempotency_key)] == action.tracker_key

        # Every issue links back to the finding it answers (Jira: in the description and as a remote link).
        finding_url = f"http://aftermath.test/postmortems/{postmortem['id']}#finding-{finding['id']}"
        for key, issue in jira.issues.items():
            assert finding_url in issue.fields["description"], key
            assert [link["object"]["url"] for link in issue.remote_links] == [finding_url], key
        for issue in github.issues(GITHUB_REPO):
            assert finding_url in (issue.body or ""), issue.number

        # The ledger says "filed" once per action, and its chain holds.
        ledger = api.get("/api/v1/ledger", params={"limit": 500}, headers=READ).json()
        entries = ledger["items"]
        cursor = ledger["next_cursor"]
        while cursor:
            page = api.get("/api/v1/ledger", params={"limit": 500, "cursor": cursor}, headers=READ).json()
            entries, cursor = entries + page["items"], page["next_cursor"]
        filed = Counter(e["action_id"] for e in entries if e["kind"] == "filed")
        assert len(filed) == ACTIONS and set(filed.values()) == {1}
        assert api.get("/api/v1/ledger/verify", headers=READ).json()["ok"] is True
