"""A service wired to both fake trackers with fast clients, and bulk builders of actions to file, for the suite."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient

from app import actions
from app.actions import Action
from app.api.main import create_app
from app.context import Context
from app.jobs import Job
from app.postmortems import Postmortem
from connectors.github_tracker import GitHubTracker
from connectors.jira_tracker import JiraTracker
from connectors.targets import Target
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira
from tests.helpers import WRITE, add_finding, make_postmortem, pd_event, post_pd

GITHUB_REPO = "acme/payments"
GITHUB_TARGET = {"kind": "github", "repo": GITHUB_REPO}
JIRA_TARGET = {"kind": "jira", "project": "OPS", "issue_type": "Task"}
_GH_MARKER = re.compile(r"<!-- aftermath:key=(aftermath-[0-9a-f]+-action-\d+) -->")


def fast_github(fake: FakeGitHub, timeout: int = 15) -> GitHubTracker:
    """The real connector without its client-side pacing (a fake needs no politeness; CI time does)."""
    return GitHubTracker(
        "test-token", fake.url, timeout=timeout, seconds_between_requests=0, seconds_between_writes=0, retry_backoff=0
    )


def wire(context: Context, jira: FakeJira | None, github: FakeGitHub | None, timeout: float = 15.0) -> Context:
    """Point the context's trackers at the fakes, with a short client timeout so a hung answer costs little."""
    if jira is not None:
        context.settings.jira_url, context.settings.jira_user = jira.url, jira.user
        context.settings.jira_token = jira.token
        context.trackers["jira"] = JiraTracker(jira.url, jira.user, jira.token, timeout=timeout)
    if github is not None:
        context.settings.github_token, context.settings.github_api_url = "test-token", github.url
        context.trackers["github"] = fast_github(github, timeout=max(1, round(timeout)))
    return context


def open_postmortem(client: TestClient, incident_key: str = "REL1") -> tuple[dict[str, Any], dict[str, Any]]:
    """An incident from a signed PagerDuty event, its postmortem and one finding (service Checkout API → Jira)."""
    post_pd(client, pd_event("incident.triggered", event_id=f"EV-{incident_key}", incident_id=incident_key))
    incidents = client.get("/api/v1/incidents", headers=WRITE).json()["items"]
    incident = next(i for i in incidents if i["external_id"] == incident_key)
    postmortem = make_postmortem(client, incident["id"])
    finding = add_finding(client, postmortem["id"], statement="Retries amplified the outage")
    return postmortem, finding


def queue_actions(context: Context, count: int, target: Target) -> None:
    """A postmortem with `count` actions to `target`, written as the API writes them (each with its filing job), but
    in one transaction: far faster than `count` requests."""
    with TestClient(create_app(context, embedded_worker=False)) as api:
        postmortem_ref, finding = open_postmortem(api)
    with context.write() as session:
        postmortem = session.get(Postmortem, postmortem_ref["id"])
        assert postmortem is not None
        for n in range(count):
            fields = {"title": f"Action {n}", "owner": "alice@example.com", "due_date": date(2030, 1, 1) + timedelta(n)}
            actions.add(session, context.mappings, postmortem, fields, [finding["id"]], target, author="test")


def post_actions(
    client: TestClient,
    postmortem_id: int,
    finding_id: int,
    targets: list[dict[str, Any]],
    due_dates: list[date] | None = None,
) -> list[dict[str, Any]]:
    """One action per target, through the REST API (so each writes its durable filing job like a user's would)."""
    created = []
    first_due = date(2030, 1, 1)
    for n, target in enumerate(targets):
        due = due_dates[n] if due_dates else first_due + timedelta(days=n % 365)
        body = {
            "title": f"Reliability action {n}",
            "owner": "alice@example.com",
            "due_date": due.isoformat(),
            "success_metric": "no recurrence in 90 days",
            "finding_ids": [finding_id],
            "tracker": target,
        }
        response = client.post(f"/api/v1/postmortems/{postmortem_id}/actions", json=body, headers=WRITE)
        assert response.status_code == 201, response.text
        created.append(dict(response.json()))
    return created


def jira_keys_by_label(jira: FakeJira) -> Iterator[tuple[str, str]]:
    """(idempotency label, issue key) for every issue in the fake Jira."""
    for key, issue in jira.issues.items():
        for label in issue.fields.get("labels") or []:
            if re.fullmatch(r"aftermath-[0-9a-f]+-action-\d+", label):
                yield label, key


def github_keys_by_marker(github: FakeGitHub, repo: str = GITHUB_REPO) -> Iterator[tuple[str, str]]:
    for issue in github.issues(repo):
        for marker in _GH_MARKER.findall(issue.body or ""):
            yield marker, f"{repo}#{issue.number}"


def job_states(context: Context) -> dict[int, tuple[str, int, str | None]]:
    """action id → (job status, attempts, last error) of its file_action job."""
    with context.read() as session:
        found = session.query(Job).filter(Job.kind == "file_action").all()  # type: ignore[arg-type]
        return {j.action_id or 0: (j.status, j.attempts, j.last_error) for j in found}


def job_counts(context: Context) -> Counter[str]:
    """Jobs of every kind by status."""
    with context.read() as session:
        return Counter(str(row[0]) for row in session.query(Job.status).all())


def actions_by_id(context: Context) -> dict[int, Action]:
    with context.read() as session:
        return {a.id or 0: a for a in session.query(Action).all()}
