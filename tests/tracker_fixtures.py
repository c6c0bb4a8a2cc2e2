"""Fixtures for the tracker loop: a service wired to fake Jira and GitHub servers, and a postmortem to act on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.context import Context, build_context
from app.mappings import load_mappings
from connectors.github_tracker import GitHubTracker
from tests.conftest import ROOT, make_settings
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import DEFAULT_ACCOUNT_ID, FakeJira
from tests.helpers import WRITE, add_finding, make_postmortem, pd_event, post_pd


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as server:
        yield server


@pytest.fixture
def tracker_mappings(tmp_path: Path) -> Path:
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    people = {"alice@example.com": {"jira_account_id": DEFAULT_ACCOUNT_ID, "github_login": "alice"}}
    (folder / "people.yaml").write_text(yaml.safe_dump(people))
    return folder


@pytest.fixture
def wired(database_url: str, fake_jira: FakeJira, tracker_mappings: Path) -> Iterator[Context]:
    settings = make_settings(
        database_url,
        mappings=tracker_mappings,
        jira_url=fake_jira.url,
        jira_user=fake_jira.user,
        jira_token=fake_jira.token,
        jira_webhook_secret="jira-hook-secret",
        github_webhook_secret="gh-hook-secret",
    )
    context = build_context(settings)
    yield context
    context.engine.dispose()


@pytest.fixture
def api(wired: Context) -> Iterator[TestClient]:
    with TestClient(create_app(wired, embedded_worker=False)) as client:
        yield client


def set_ladder(context: Context, folder: Path, ladder: list[dict[str, Any]]) -> None:
    """Replace the escalation ladder of the mappings in `folder` (an empty one turns escalation off) and reload."""
    (folder / "escalation.yaml").write_text(yaml.safe_dump({"ladder": ladder}))
    context.mappings = load_mappings(folder)


def new_action(client: TestClient, incident_key: str = "QT1", **fields: Any) -> dict[str, Any]:
    """An incident (service Checkout API → Jira OPS by the shipped mappings), its postmortem, a finding, an action."""
    post_pd(client, pd_event("incident.triggered", event_id=f"EV-{incident_key}", incident_id=incident_key))
    incidents = client.get("/api/v1/incidents", headers=WRITE).json()["items"]
    incident = next(i for i in incidents if i["external_id"] == incident_key)
    postmortem = make_postmortem(client, incident["id"])
    finding = add_finding(client, postmortem["id"], statement="Disk filled because logs were never rotated")
    body = {
        "title": "Rotate logs",
        "owner": "alice@example.com",
        "due_date": "2030-01-31",
        "success_metric": "disk < 70% for 30 days",
        "finding_ids": [finding["id"]],
        **fields,
    }
    response = client.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.add_repo("acme/payments", assignable={"alice"})
        yield server


@pytest.fixture
def gh_wired(wired: Context, fake_github: FakeGitHub) -> Context:
    """The service with GitHub configured; the client's write pacing is shortened so tests run fast."""
    wired.settings.github_token, wired.settings.github_api_url = "test-token", fake_github.url
    wired.trackers["github"] = GitHubTracker(
        "test-token", fake_github.url, seconds_between_requests=0, seconds_between_writes=0, retry_backoff=0
    )
    return wired
