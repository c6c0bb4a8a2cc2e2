"""REST → job → worker → real PyGithub → fake GitHub → conditional poll → ledger → REST, on both databases."""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi.testclient import TestClient

from app import tracking
from app.context import Context
from app.worker import Worker
from tests.fakes.fake_github import FakeGitHub
from tests.helpers import READ, issue_key
from tests.tracker_fixtures import api, fake_github, fake_jira, gh_wired, new_action, tracker_mappings, wired

__all__ = ["api", "fake_github", "fake_jira", "gh_wired", "tracker_mappings", "wired"]
REPO = {"kind": "github", "repo": "acme/payments"}


def _action(client: TestClient, action_id: int) -> dict:
    return dict(client.get(f"/api/v1/actions/{action_id}", headers=READ).json())


def test_filed_once_with_marker_labels_assignee(api: TestClient, gh_wired: Context, fake_github: FakeGitHub) -> None:
    action = new_action(api, tracker=REPO, priority="high")
    Worker(gh_wired).run_once()
    filed = _action(api, action["id"])
    assert filed["tracker_key"] == "acme/payments#1" and filed["status"] == "open", filed
    issue = fake_github.issue("acme/payments", 1)
    assert issue.title.startswith("[PM-") and issue.title.endswith("Rotate logs")
    assert f"<!-- aftermath:key={issue_key(gh_wired, action['id'])} -->" in issue.body
    assert f"http://aftermath.test/postmortems/{action['postmortem_id']}#finding-" in issue.body
    assert issue.assignees == ["alice"] and "priority/high" in issue.labels and "postmortem" in issue.labels
    Worker(gh_wired).run_once()
    assert len(fake_github.issues("acme/payments")) == 1


def test_lost_answer_is_recovered_without_search(api: TestClient, gh_wired: Context, fake_github: FakeGitHub) -> None:
    action = new_action(api, tracker=REPO)
    fake_github.fail_next(1, status=502, path_contains="/issues", after_effect=True)
    worker = Worker(gh_wired)
    worker.run_once()
    assert len(fake_github.issues("acme/payments")) == 1
    assert _action(api, action["id"])["status"] == "unfiled"
    from tests.test_tracker_loop_jira import _make_job_due

    _make_job_due(gh_wired)
    worker.run_once()
    assert _action(api, action["id"])["tracker_key"] == "acme/payments#1"
    assert len(fake_github.issues("acme/payments")) == 1
    assert fake_github.count(path_contains="/search/") == 0


def test_poll_is_free_when_nothing_changed_and_sees_not_planned(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    action = new_action(api, tracker=REPO)
    Worker(gh_wired).run_once()  # files, then the first poll
    remaining = fake_github.core_remaining
    tracking.poll_all(gh_wired)
    assert fake_github.core_remaining == remaining  # a 304 costs no rate limit
    fake_github.close_issue("acme/payments", 1, reason="not_planned")
    tracking.poll_all(gh_wired)
    entries = _action(api, action["id"])["ledger"]
    assert (entries[-1]["kind"], entries[-1]["to_status"], entries[-1]["tracker_status"]) == (
        "status_changed",
        "wont_do",
        "closed:not_planned",
    )
    fake_github.reopen_issue("acme/payments", 1)
    tracking.poll_all(gh_wired)
    tracking.poll_all(gh_wired)
    kinds = [e["kind"] for e in _action(api, action["id"])["ledger"]]
    assert kinds == ["filed", "status_changed", "reopened"]


def test_github_webhook_close_then_poll_writes_nothing_more(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    action = new_action(api, tracker=REPO)
    Worker(gh_wired).run_once()
    fake_github.close_issue("acme/payments", 1, reason="completed")
    payload = {
        "action": "closed",
        "issue": {"number": 1, "state": "closed", "state_reason": "completed", "updated_at": "2026-11-27T10:00:00Z"},
        "repository": {"full_name": "acme/payments"},
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(b"gh-hook-secret", body, hashlib.sha256).hexdigest()
    response = api.post(
        "/webhooks/github",
        content=body,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d-1"},
    )
    assert response.status_code == 202 and response.json()["status"] == "accepted"
    entries = _action(api, action["id"])["ledger"]
    assert (entries[-1]["to_status"], entries[-1]["source"]) == ("done", "webhook")
    tracking.poll_all(gh_wired)
    assert len(_action(api, action["id"])["ledger"]) == len(entries)


def test_a_deleted_or_transferred_issue_is_found_by_the_audit_the_listing_cannot_do(
    api: TestClient, gh_wired: Context, fake_github: FakeGitHub
) -> None:
    fake_github.add_repo("acme/platform", assignable={"alice"})
    gone, moved = new_action(api, tracker=REPO), new_action(api, incident_key="QT2", tracker=REPO)
    Worker(gh_wired).run_once()
    tracking.poll_all(gh_wired)
    fake_github.delete_issue("acme/payments", 1)
    fake_github.transfer_issue("acme/payments", 2, "acme/platform")
    tracking.poll_all(gh_wired)  # a steady-state listing sees neither
    assert _action(api, gone["id"])["tracker_state"] == "ok"
    graphql_before = fake_github.count("POST", "/graphql")
    tracking.poll_all(gh_wired, audit=True)
    assert fake_github.count("POST", "/graphql") - graphql_before == 1  # one nodes() query for up to 100 issues
    assert _action(api, gone["id"])["tracker_state"] == "missing"
    assert [e["kind"] for e in _action(api, gone["id"])["ledger"]][-1] == "tracker_missing"
    now = _action(api, moved["id"])
    assert now["tracker_key"] == "acme/platform#1" and now["ledger"][-1]["kind"] == "tracker_moved"
