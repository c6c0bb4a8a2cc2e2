"""Small builders for tests: signed webhook deliveries, sample payloads, a postmortem with findings."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.actions import Action
from app.context import Context
from app.worker import Worker

# A byte-for-byte copy of the shared samples (signatures cover the exact bytes): the tests need nothing beside the repo.
PAYLOADS = Path(__file__).resolve().parent / "payloads"
WRITE = {"Authorization": "Bearer test-write-token"}
READ = {"Authorization": "Bearer test-reader-token"}


def payload(relative: str) -> bytes:
    return (PAYLOADS / relative).read_bytes()


def pd_signature(body: bytes, secret: str = "pd-secret-new") -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def apply_inbox(client: TestClient) -> int:
    """What the worker does in the background: apply stored events to incidents (here, right away)."""
    return Worker(client.app.state.context).apply_inbox()  # type: ignore[attr-defined]


def post_pd(client: TestClient, body: bytes, secret: str = "pd-secret-new") -> Any:
    response = client.post(
        "/webhooks/pagerduty",
        content=body,
        headers={"X-PagerDuty-Signature": pd_signature(body, secret), "Content-Type": "application/json"},
    )
    apply_inbox(client)
    return response


def post_og(client: TestClient, body: bytes, token: str = "og-token") -> Any:
    response = client.post(
        "/webhooks/opsgenie", content=body, headers={"X-Aftermath-Token": token, "Content-Type": "application/json"}
    )
    apply_inbox(client)
    return response


def pd_event(
    event_type: str,
    *,
    event_id: str,
    incident_id: str = "Q2TEST0000001",
    at: str = "2026-03-14T09:12:04.617Z",
    priority: str | None = None,
    urgency: str = "high",
    title: str = "Checkout API down",
    status: str = "triggered",
    service: str = "Checkout API",
) -> bytes:
    data = {
        "id": incident_id,
        "type": "incident",
        "self": f"https://api.pagerduty.com/incidents/{incident_id}",
        "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
        "number": 1,
        "status": status,
        "incident_key": None,
        "created_at": at[:19] + "Z",
        "title": title,
        "service": {"id": "PSVC1", "type": "service_reference", "summary": service},
        "assignees": [],
        "teams": [{"id": "PT1", "type": "team_reference", "summary": "Payments SRE"}],
        "priority": None if priority is None else {"id": "PP", "type": "priority_reference", "summary": priority},
        "urgency": urgency,
    }
    event = {
        "event": {
            "id": event_id,
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": at,
            "agent": {"id": "PU1", "type": "user_reference", "summary": "Alice"},
            "client": None,
            "data": data,
        }
    }
    return json.dumps(event).encode()


def issue_key(context: Context, action_id: int) -> str:
    """The key that marks the action's tracker issue (label, body marker)."""
    with context.read() as session:
        action = session.get(Action, action_id)
        assert action is not None and action.idempotency_key is not None
        return action.idempotency_key


def make_postmortem(client: TestClient, incident_id: int) -> dict[str, Any]:
    response = client.post(f"/api/v1/incidents/{incident_id}/postmortem", headers=WRITE)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def add_finding(client: TestClient, postmortem_id: int, **fields: Any) -> dict[str, Any]:
    body = {"kind": "root_cause", "statement": "Connection pool too small", "category": "capacity", **fields}
    response = client.post(f"/api/v1/postmortems/{postmortem_id}/findings", json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    return dict(response.json())


def first_incident(client: TestClient) -> dict[str, Any]:
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    assert items, "no incident was created"
    return dict(items[0])


REVIEWERS = [
    {"who": "dana@example.com", "role": "facilitator", "function": "operations"},
    {"who": "erin@example.com", "role": "reviewer", "function": "engineering"},
]


def complete_review(client: TestClient, postmortem_id: int) -> dict[str, Any]:
    """Fill in what the minimum viable report lacks (keeping what is set) but for the answers to findings and the
    actions' fields: a summary, the impact, a facilitator and a reviewer, and a cause whose risk is accepted."""
    pm = client.get(f"/api/v1/postmortems/{postmortem_id}", headers=READ).json()
    patch: dict[str, Any] = {"participants": REVIEWERS}
    patch |= {} if pm["summary"] else {"summary": "What happened, in two sentences."}
    patch |= {} if pm["customer_impact"] else {"customer_impact": "Checkout failed for some customers."}
    patch |= {} if pm["impact_start"] else {"impact_start": "2026-03-14T09:00:00Z"}
    response = client.patch(f"/api/v1/postmortems/{postmortem_id}", json=patch, headers=WRITE)
    assert response.status_code == 200, response.text
    if not any(f["kind"] in ("root_cause", "contributing_factor") for f in pm["findings"]):
        add_finding(client, postmortem_id, accepted_risk="Rare and cheap to recover from; accepted by Dana (SRE lead)")
    return dict(response.json())
