"""Whether the fix worked, through the routes, the poll and the worker on both databases, with a controlled clock
(the sweep's `now`): done starts a verification, it is asked for once when due, the owner records held or failed,
and a recurrence marks a done action whose fix was not verified as held."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from app import tracking, verification
from app.context import Context
from app.db import utcnow
from app.mappings import load_mappings
from app.worker import Worker
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ, WRITE, pd_event, post_pd
from tests.tracker_fixtures import api, fake_jira, new_action, tracker_mappings, wired

__all__ = ["api", "fake_jira", "tracker_mappings", "wired"]


def _sweep(context: Context, now: datetime) -> int:
    with context.write() as session:
        return verification.sweep(session, now)


def _detail(client: TestClient, action_id: int) -> dict[str, Any]:
    return dict(client.get(f"/api/v1/actions/{action_id}", headers=READ).json())


def _verify(client: TestClient, action_id: int, body: Any, headers: dict[str, str] = WRITE) -> Any:
    return client.post(f"/api/v1/actions/{action_id}/verification", json=body, headers=headers)


def _done(context: Context, fake_jira: FakeJira, key: str = "OPS-1") -> None:
    fake_jira.set_status(key, "Done", "done", resolution="Done")
    tracking.poll_all(context)


def _verification_comments(fake_jira: FakeJira, key: str = "OPS-1") -> list[str]:
    return [str(c["body"]) for c in fake_jira.issues[key].comments if "Verification due" in str(c["body"])]


def test_a_done_action_is_verified_once_due(
    api: TestClient, wired: Context, fake_jira: FakeJira, tracker_mappings: Path
) -> None:
    escalation = yaml.safe_load((tracker_mappings / "escalation.yaml").read_text())
    (tracker_mappings / "escalation.yaml").write_text(yaml.safe_dump({**escalation, "verify_after_days": 14}))
    wired.mappings = load_mappings(tracker_mappings)
    action = new_action(api)
    worker = Worker(wired)
    worker.run_once()
    assert _detail(api, action["id"])["verification"] is None  # open: nothing to verify
    assert _verify(api, action["id"], {"result": "held"}).status_code == 409

    _done(wired, fake_jira)
    today = utcnow().astimezone(UTC).date()
    due = today + timedelta(days=14)
    pending = _detail(api, action["id"])["verification"]
    assert pending["state"] == "pending" and pending["due"] == due.isoformat() and pending["note"] is None

    noon = lambda day: datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)  # noqa: E731
    assert _sweep(wired, noon(due - timedelta(days=1))) == 0  # not due yet
    assert _sweep(wired, noon(due)) == 1
    for later in (noon(due), noon(due + timedelta(days=3))):
        assert _sweep(wired, later) == 0  # asked once, never again
    worker.run_once()
    worker.run_once()
    asked = _verification_comments(fake_jira)
    assert len(asked) == 1 and "disk < 70% for 30 days" in asked[0] and f"#action-{action['id']}" in asked[0]

    version = api.get(f"/api/v1/postmortems/{action['postmortem_id']}", headers=READ).json()["version"]
    answer = _verify(api, action["id"], {"result": "held", "note": "disk at 41% for 30 days"})
    assert answer.status_code == 200, answer.text
    held = answer.json()["verification"]
    assert (held["state"], held["note"], held["due"]) == ("held", "disk at 41% for 30 days", due.isoformat())
    entry = [e for e in answer.json()["ledger"] if e["kind"] == "verified"]
    assert [(e["details"]["result"], e["details"]["by"], e["source"]) for e in entry] == [("held", "writer", "api")]
    pm = api.get(f"/api/v1/postmortems/{action['postmortem_id']}/revisions", headers=READ).json()
    revisions = pm["items"] if isinstance(pm, dict) else pm
    assert any("action_verified" in r["changes"] for r in revisions)
    assert api.get(f"/api/v1/postmortems/{action['postmortem_id']}", headers=READ).json()["version"] == version + 1
    assert api.get("/api/v1/ledger/verify", headers=READ).json()["ok"] is True

    # Reopened in the tracker: the verification is dropped; done again, a new one starts.
    fake_jira.set_status("OPS-1", "In Progress", "indeterminate")
    tracking.poll_all(wired)
    assert _detail(api, action["id"])["verification"] is None
    _done(wired, fake_jira)
    assert _detail(api, action["id"])["verification"]["state"] == "pending"


def test_verification_input_is_checked(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    _done(wired, fake_jira)
    for body in ({"result": "pending"}, {"result": "recurred"}, {"result": "HELD"}, {}, {"result": "held", "x": 1}):
        assert _verify(api, action["id"], body).status_code == 422, body
    assert _verify(api, action["id"], {"result": "held", "note": "n" * 20_001}).status_code == 422
    assert _verify(api, action["id"], {"result": "held"}, headers=READ).status_code == 403
    assert _verify(api, action["id"], {"result": "held"}, headers={}).status_code == 401
    assert _verify(api, 999_999, {"result": "held"}).status_code == 404
    failed = _verify(api, action["id"], {"result": "failed", "note": "disk at 85% after a week"})
    assert failed.status_code == 200 and failed.json()["verification"]["state"] == "failed"


def test_a_recurrence_marks_done_actions_not_verified_as_held(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    first = new_action(api, incident_key="QFIX")
    body = {**{k: first[k] for k in ("owner", "due_date", "success_metric", "finding_ids")}, "title": "Alert on disk"}
    second = api.post(f"/api/v1/postmortems/{first['postmortem_id']}/actions", json=body, headers=WRITE).json()
    Worker(wired).run_once()
    _done(wired, fake_jira, "OPS-1")
    _done(wired, fake_jira, "OPS-2")
    assert _verify(api, second["id"], {"result": "held", "note": "alerts fire at 80%"}).status_code == 200

    post_pd(api, pd_event("incident.triggered", event_id="EV-again", incident_id="QAGAIN", at="2026-03-20T10:00:00Z"))
    Worker(wired).run_once()
    marked = _detail(api, first["id"])
    assert marked["verification"]["state"] == "recurred" and marked["status"] == "done"
    assert [e["details"].get("after_done") for e in marked["ledger"] if e["kind"] == "recurred"] == [True]
    told = [str(c["body"]) for c in fake_jira.issues["OPS-1"].comments if "This failure recurred" in str(c["body"])]
    assert len(told) == 1 and "was done, but the failure came back" in told[0]
    kept = _detail(api, second["id"])  # verified as held: the recurrence is another failure, its fix stands
    assert kept["verification"]["state"] == "held" and "recurred" not in [e["kind"] for e in kept["ledger"]]
    assert not [c for c in fake_jira.issues["OPS-2"].comments if "This failure recurred" in str(c["body"])]


def test_an_outcome_recorded_before_the_comment_is_posted_cancels_the_ask(
    api: TestClient, wired: Context, fake_jira: FakeJira
) -> None:
    action = new_action(api)
    worker = Worker(wired)
    worker.run_once()
    _done(wired, fake_jira)
    due = date.fromisoformat(_detail(api, action["id"])["verification"]["due"])
    assert _sweep(wired, datetime.combine(due, datetime.min.time(), UTC)) == 1  # queued, not posted yet
    assert _verify(api, action["id"], {"result": "failed", "note": "disk at 90% again"}).status_code == 200
    worker.run_once()
    assert _verification_comments(fake_jira) == []
    assert _detail(api, action["id"])["verification"]["state"] == "failed"
