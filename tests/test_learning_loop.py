"""Tracker webhooks, reminders, recurrence and missing issues, through the routes and the worker."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from app import tracking
from app.actions import Action
from app.context import Context
from app.db import utcnow
from app.worker import Worker
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ, pd_event, post_pd
from tests.tracker_fixtures import api, fake_jira, new_action, set_ladder, tracker_mappings, wired

__all__ = ["api", "fake_jira", "tracker_mappings", "wired"]


def _jira_hook(client: TestClient, payload: dict, secret: str = "jira-hook-secret", delivery: str = "d1") -> object:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        "/webhooks/jira",
        content=body,
        headers={"X-Hub-Signature": signature, "X-Atlassian-Webhook-Identifier": delivery},
    )


def _jira_update(key: str, status: str, category: str, resolution: str | None = None) -> dict:
    return {
        "timestamp": 1775115678891,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "issue": {
            "id": "10001",
            "key": key,
            "fields": {
                "status": {"name": status, "statusCategory": {"key": category}},
                "resolution": {"name": resolution} if resolution else None,
            },
        },
        "changelog": {"id": "1", "items": [{"field": "status", "fieldtype": "jira", "toString": status}]},
    }


def _ledger(client: TestClient, action_id: int) -> list[dict]:
    return list(client.get(f"/api/v1/actions/{action_id}", headers=READ).json()["ledger"])


def test_jira_webhook_records_the_change_and_the_poll_adds_nothing(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Done")
    response = _jira_hook(api, _jira_update("OPS-1", "Done", "done", "Done"))
    assert response.status_code == 202 and response.json()["status"] == "accepted"  # type: ignore[attr-defined]
    entries = _ledger(api, action["id"])
    assert [(e["kind"], e["to_status"], e["source"]) for e in entries][-1] == ("status_changed", "done", "webhook")
    # The same delivery again is a duplicate; the next poll finds nothing new.
    assert _jira_hook(api, _jira_update("OPS-1", "Done", "done", "Done")).json()["status"] == "duplicate"  # type: ignore[attr-defined]
    tracking.poll_all(wired)
    assert len(_ledger(api, action["id"])) == len(entries)


def test_jira_webhook_authentication(api: TestClient) -> None:
    body = json.dumps(_jira_update("OPS-1", "Done", "done")).encode()
    assert api.post("/webhooks/jira", content=body).status_code == 401
    assert _jira_hook(api, _jira_update("OPS-1", "Done", "done"), secret="wrong").status_code == 401  # type: ignore[attr-defined]
    assert api.post("/webhooks/jira?secret=jira-hook-secret", content=body).status_code == 202
    assert api.post("/webhooks/jira?secret=nope", content=body).status_code == 401
    malformed = api.post("/webhooks/jira?secret=jira-hook-secret", content=b'{"webhookEvent": "jira:issue_updated"}')
    assert malformed.status_code == 422


def test_github_webhook_signature_and_ignored_events(api: TestClient) -> None:
    body = json.dumps({"zen": "Keep it logically awesome."}).encode()
    signature = "sha256=" + hmac.new(b"gh-hook-secret", body, hashlib.sha256).hexdigest()
    ping = api.post(
        "/webhooks/github",
        content=body,
        headers={"X-Hub-Signature-256": signature, "X-GitHub-Event": "ping", "X-GitHub-Delivery": "g1"},
    )
    assert ping.status_code == 202 and ping.json()["status"] == "ignored"
    bad = api.post(
        "/webhooks/github", content=body, headers={"X-Hub-Signature-256": "sha256=00", "X-GitHub-Event": "ping"}
    )
    assert bad.status_code == 401


def test_overdue_action_is_reminded_once_per_interval(
    api: TestClient, wired: Context, fake_jira: FakeJira, tracker_mappings: Path
) -> None:
    set_ladder(wired, tracker_mappings, [])  # reminders alone: no escalation comment in between
    action = new_action(api, due_date=(utcnow() - timedelta(days=3)).date().isoformat())
    worker = Worker(wired)
    worker.run_once()  # files it, and the first reminder sweep queues a reminder
    worker.run_once()  # posts it
    comments = fake_jira.issues["OPS-1"].comments
    assert len(comments) == 1 and "Reminder" in str(comments[0])
    # More sweeps within the interval, even from another worker, remind nobody again.
    with wired.write() as session:
        from app import notify

        assert notify.queue_reminders(session, wired.settings.reminder_interval, utcnow()) == 0
    Worker(wired).run_once()
    assert len(fake_jira.issues["OPS-1"].comments) == 1
    kinds = [e["kind"] for e in _ledger(api, action["id"])]
    assert kinds.count("reminded") == 1
    # Once the interval has passed, one more.
    with wired.write() as session:
        session.execute(update(Action).values(last_reminded_at=utcnow() - timedelta(days=8)))
        assert notify.queue_reminders(session, wired.settings.reminder_interval, utcnow()) == 1


def test_recurrence_links_incidents_and_comments_on_open_actions(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api, incident_key="QFIRST")
    Worker(wired).run_once()
    post_pd(
        api, pd_event("incident.triggered", event_id="EV-again", incident_id="QAGAIN", at="2026-03-15T10:00:00.000Z")
    )
    incidents = api.get("/api/v1/incidents", headers=READ).json()["items"]
    first = next(i for i in incidents if i["external_id"] == "QFIRST")
    again = next(i for i in incidents if i["external_id"] == "QAGAIN")
    assert again["recurrence_of"] == first["id"] and again["recurred_after_actions_done"] is False
    earlier_pm = api.get(f"/api/v1/postmortems/{first['postmortem_id']}", headers=READ).json()
    assert [(r["incident_id"], r["actions_all_done"]) for r in earlier_pm["recurrences"]] == [(again["id"], False)]
    Worker(wired).run_once()
    comments = [str(c) for c in fake_jira.issues["OPS-1"].comments]
    assert any("This failure recurred" in c for c in comments)
    assert "recurred" in [e["kind"] for e in _ledger(api, action["id"])]


def test_deleted_and_moved_jira_issues_are_reported(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    first = new_action(api, incident_key="QA")
    second = new_action(api, incident_key="QB")
    Worker(wired).run_once()
    fake_jira.delete_issue("OPS-1")
    fake_jira.add_project("NEW")
    new_key = fake_jira.move_issue("OPS-2", "NEW")
    tracking.poll_all(wired)
    gone = api.get(f"/api/v1/actions/{first['id']}", headers=READ).json()
    assert gone["tracker_state"] == "missing" and gone["ledger"][-1]["kind"] == "tracker_missing"
    moved = api.get(f"/api/v1/actions/{second['id']}", headers=READ).json()
    assert moved["tracker_key"] == new_key and "tracker_moved" in [e["kind"] for e in moved["ledger"]]
    tracking.poll_all(wired)  # reported once, not on every poll
    assert len(api.get(f"/api/v1/actions/{first['id']}", headers=READ).json()["ledger"]) == len(gone["ledger"])


def test_recurrence_after_all_actions_done_is_flagged(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api, incident_key="QFIXED")
    Worker(wired).run_once()
    fake_jira.set_status("OPS-1", "Done", "done", resolution="Done")
    tracking.poll_all(wired)
    post_pd(api, pd_event("incident.triggered", event_id="EV-back", incident_id="QBACK", at="2026-03-20T10:00:00.000Z"))
    back = next(i for i in api.get("/api/v1/incidents", headers=READ).json()["items"] if i["external_id"] == "QBACK")
    assert back["recurred_after_actions_done"] is True
    page = api.get(f"/postmortems/{action['postmortem_id']}", headers=READ)
    assert page.status_code == 200 and "the fix did not work" in page.text and f"recurrence-{back['id']}" in page.text
    # A done action whose fix was never verified as held is marked recurred, and its closed issue is told.
    assert "recurred" in [e["kind"] for e in _ledger(api, action["id"])]
    assert api.get(f"/api/v1/actions/{action['id']}", headers=READ).json()["verification"]["state"] == "recurred"
