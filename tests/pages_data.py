"""The data the page tests look at, built through the API (incidents from signed webhooks, postmortems, findings,
actions); what only a tracker or the escalation sweep would set (issue keys, statuses, escalation steps) is written
as they write it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from app import ledger
from app.actions import Action
from app.context import Context
from app.db import utcnow
from app.incidents import Incident
from app.vocabulary import ActionStatus, LedgerKind, LedgerSource
from tests.helpers import READ, WRITE, add_finding, make_postmortem, pd_event, post_pd

TRACKER_URL = "https://acme.atlassian.net/browse/OPS-7"
NASTY_TITLE = '=HYPERLINK("http://evil.example","click"), then "quotes"\nand a second line, ünïcödé'


@dataclass(frozen=True)
class Built:
    recent_pm: int
    old_pm: int
    finding: int
    overdue: int  # open, due yesterday, filed as OPS-7, owner alice
    soon: int  # open, due in 3 days, owner bob
    far: int  # open, due in 30 days
    done: int  # done, was due last week (not overdue)
    nasty: int  # unfiled, no due date, a title and an owner a spreadsheet would run
    escalated: int  # on the old postmortem, escalated to level 1 (told carol)
    recurrence: int  # incident id of the recurrence of the old incident


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _incident(client: TestClient, key: str, triggered: datetime, service: str, ack_after: timedelta | None) -> int:
    post_pd(
        client,
        pd_event("incident.triggered", event_id=f"T-{key}", incident_id=key, at=_iso(triggered), service=service),
    )
    if ack_after is not None:
        ack = pd_event(
            "incident.acknowledged",
            event_id=f"A-{key}",
            incident_id=key,
            at=_iso(triggered + ack_after),
            status="acknowledged",
            service=service,
        )
        post_pd(client, ack)
    items = client.get("/api/v1/incidents", headers=READ, params={"limit": 500}).json()["items"]
    return int(next(i for i in items if i["external_id"] == key)["id"])


def _action(client: TestClient, pm: int, finding: int, **fields: Any) -> int:
    body = {"kind": "monitoring", "finding_ids": [finding], **fields}
    response = client.post(f"/api/v1/postmortems/{pm}/actions", json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def build(client: TestClient, context: Context) -> Built:
    now = utcnow()
    today = now.date()
    recent = _incident(client, "QPAGE1", now - timedelta(days=2), "Checkout API", timedelta(minutes=3, seconds=37))
    old = _incident(
        client,
        "QPAGE2",
        datetime(2026, 3, 14, 9, 12, 4, 617000, tzinfo=UTC),
        "Search API",
        timedelta(minutes=3, seconds=37),
    )
    resolve = pd_event(
        "incident.resolved",
        event_id="R-QPAGE2",
        incident_id="QPAGE2",
        at="2026-03-14T10:12:04.617Z",
        status="resolved",
        service="Search API",
    )
    post_pd(client, resolve)
    again = _incident(client, "QPAGE3", now - timedelta(days=1), "Search API", None)
    recent_pm, old_pm = make_postmortem(client, recent)["id"], make_postmortem(client, old)["id"]
    finding = add_finding(client, recent_pm, category="capacity")["id"]
    old_finding = add_finding(client, old_pm, category="dependency")["id"]
    late_review = client.patch(
        f"/api/v1/postmortems/{old_pm}",
        json={"review_due": "2026-03-21", "impact_start": "2026-03-14T09:02:04.617Z"},
        headers=WRITE,
    )
    assert late_review.status_code == 200, late_review.text
    day = timedelta(days=1)
    ids = {
        "overdue": _action(
            client,
            recent_pm,
            finding,
            title="Alert on pool saturation",
            owner="alice@example.com",
            due_date=(today - day).isoformat(),
        ),
        "soon": _action(
            client,
            recent_pm,
            finding,
            title="Raise the pool size",
            owner="bob@example.com",
            due_date=(today + 3 * day).isoformat(),
        ),
        "far": _action(
            client,
            recent_pm,
            finding,
            title="Rewrite the pool",
            owner="alice@example.com",
            due_date=(today + 30 * day).isoformat(),
        ),
        "done": _action(
            client,
            recent_pm,
            finding,
            title="Page the right team",
            owner="carol@example.com",
            due_date=(today - 7 * day).isoformat(),
        ),
        "nasty": _action(client, recent_pm, finding, title=NASTY_TITLE, owner="@dana"),
        "escalated": _action(
            client, old_pm, old_finding, title="Cache DNS answers", owner="erin@example.com", due_date="2026-04-01"
        ),
    }
    with context.write() as session:
        for name, status, key in (
            ("overdue", "open", "OPS-7"),
            ("done", "done", "OPS-8"),
            ("escalated", "open", "OPS-9"),
        ):
            action = session.get(Action, ids[name])
            assert action is not None
            action.status, action.tracker_key, action.tracker_status = ActionStatus(status), key, "To Do"
            action.tracker_url = f"https://acme.atlassian.net/browse/{key}"
            if status == "done":
                action.closed_at = now
            session.add(action)
        escalated = session.get(Action, ids["escalated"])
        assert escalated is not None
        escalated.escalation_level, escalated.escalated_at = 1, now - day
        ledger.append(
            session,
            kind=LedgerKind.ESCALATED,
            source=LedgerSource.SYSTEM,
            action_id=escalated.id,
            postmortem_id=old_pm,
            details={"level": 1, "to": "carol@example.com", "step": "manager", "key": "OPS-9"},
            at=now - day,
        )
        recurrence = session.get(Incident, again)
        assert recurrence is not None
        recurrence.recurrence_of, recurrence.recurred_after_actions_done = old, False
        session.add(recurrence)
    return Built(recent_pm=recent_pm, old_pm=old_pm, finding=finding, recurrence=again, **ids)
