"""Closed means closed (until reopened), one postmortem for several incidents, and POST …/postmortem with a body."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import READ, WRITE, add_finding, complete_review, pd_event, post_og, post_pd


def _pd_incident(client: TestClient, key: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("urgency", "low")
    post_pd(client, pd_event("incident.triggered", event_id=f"E-{key}", incident_id=key, **kw))
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    return dict(next(i for i in items if i["external_id"] == key))


def _og_create(alert_id: str, priority: str, updated_ns: int = 1775115678891000000) -> bytes:
    alert = {
        "alertId": alert_id,
        "message": "Checkout API 5xx",
        "tags": [],
        "createdAt": updated_ns // 1_000_000,
        "updatedAt": updated_ns,
        "username": "Alertmanager",
        "priority": priority,
        "entity": "checkout-api",
    }
    return json.dumps({"action": "Create", "alert": alert, "integrationId": "int-1"}).encode()


def _og_incident(client: TestClient, alert_id: str, priority: str = "P4") -> dict[str, Any]:
    assert post_og(client, _og_create(alert_id, priority)).status_code == 202
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    return dict(next(i for i in items if i["external_id"] == alert_id))


def _patch(client: TestClient, pm_id: int, **body: Any) -> Any:
    return client.patch(f"/api/v1/postmortems/{pm_id}", json=body, headers=WRITE)


def test_a_closed_postmortem_refuses_edits_until_reopened(client: TestClient) -> None:
    incident = _pd_incident(client, "Q1")
    pm = client.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE).json()
    finding = add_finding(client, pm["id"])
    action_body = {
        "title": "Bigger pool",
        "finding_ids": [finding["id"]],
        "owner": "alice@example.com",
        "due_date": "2030-01-31",
        "success_metric": "no pool exhaustion for 30 days",
    }
    action = client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=action_body, headers=WRITE).json()
    complete_review(client, pm["id"])
    for status in ("in_review", "published", "closed"):
        assert _patch(client, pm["id"], status=status).status_code == 200, status
    closed_at = client.get(f"/api/v1/postmortems/{pm['id']}", headers=READ).json()["version"]

    refused = [
        _patch(client, pm["id"], summary="late thought"),
        _patch(client, pm["id"], status="draft"),
        client.post(
            f"/api/v1/postmortems/{pm['id']}/findings", json={"kind": "process_gap", "statement": "s"}, headers=WRITE
        ),
        client.patch(f"/api/v1/findings/{finding['id']}", json={"statement": "changed"}, headers=WRITE),
        client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=action_body, headers=WRITE),
        client.patch(f"/api/v1/actions/{action['id']}", json={"title": "changed"}, headers=WRITE),
        client.post(f"/api/v1/actions/{action['id']}/refile", headers=WRITE),
        client.post(f"/api/v1/incidents/{incident['id']}/postmortem", json={"owner": "x@example.com"}, headers=WRITE),
    ]
    assert [r.status_code for r in refused] == [409] * len(refused), [r.text for r in refused]
    assert "closed" in refused[0].json()["detail"] and "in_review" in refused[0].json()["detail"]
    after = client.get(f"/api/v1/postmortems/{pm['id']}", headers=READ).json()
    assert after["version"] == closed_at and after["summary"] != "late thought" and len(after["findings"]) == 1
    assert after["actions"][0]["title"] == "Bigger pool" and after["findings"][0]["statement"] != "changed"
    # A PATCH that changes nothing changes nothing, closed or not.
    assert _patch(client, pm["id"], status="closed").status_code == 200

    reopened = _patch(client, pm["id"], status="in_review")
    assert reopened.status_code == 200 and reopened.json()["version"] == closed_at + 1
    revisions = client.get(f"/api/v1/postmortems/{pm['id']}/revisions", headers=READ).json()["items"]
    assert revisions[-1]["changes"] == {"status": {"from": "closed", "to": "in_review"}}
    assert _patch(client, pm["id"], summary="late thought").status_code == 200
    extra = {"kind": "process_gap", "statement": "s"}
    assert client.post(f"/api/v1/postmortems/{pm['id']}/findings", json=extra, headers=WRITE).status_code == 201


def test_one_postmortem_covers_an_opsgenie_alert_and_a_pagerduty_incident(client: TestClient) -> None:
    pd = _pd_incident(client, "Q1", service="Checkout API")
    og = _og_incident(client, "og-alert-1")
    body = {"summary": "Pool exhausted", "owner": "alice@example.com", "incident_ids": [pd["id"], og["id"]]}
    created = client.post(f"/api/v1/incidents/{pd['id']}/postmortem", json=body, headers=WRITE)
    assert created.status_code == 201, created.text
    pm = created.json()
    assert pm["incident_ids"] == [pd["id"], og["id"]] and pm["summary"] == "Pool exhausted"
    assert pm["owner"] == "alice@example.com" and pm["trigger"] == "manual"
    assert client.get(f"/api/v1/incidents/{og['id']}", headers=READ).json()["postmortem_id"] == pm["id"]
    # The body of a second POST is applied to the existing postmortem, as a PATCH would be.
    again = client.post(f"/api/v1/incidents/{og['id']}/postmortem", json={"owner": "bob@example.com"}, headers=WRITE)
    assert again.status_code == 200 and again.json()["id"] == pm["id"] and again.json()["owner"] == "bob@example.com"
    wrong = client.post(f"/api/v1/incidents/{og['id']}/postmortem", json={"incident_ids": [pd["id"]]}, headers=WRITE)
    assert wrong.status_code == 422

    other = _pd_incident(client, "Q2")
    pm2 = client.post(f"/api/v1/incidents/{other['id']}/postmortem", headers=WRITE).json()
    taken = _patch(client, pm["id"], incident_ids=[pd["id"], og["id"], other["id"]])
    assert taken.status_code == 409
    assert f"incident {other['id']}" in taken.json()["detail"] and pm2["key"] in taken.json()["detail"]
    assert _patch(client, pm["id"], incident_ids=[pd["id"], 999999]).status_code == 422
    assert _patch(client, pm["id"], incident_ids=[]).status_code == 422
    assert _patch(client, pm["id"], incident_ids=None).status_code == 422

    finding = add_finding(client, pm["id"])
    action = {"title": "Alert on pool saturation", "finding_ids": [finding["id"]], "due_date": "2020-01-01"}
    assert client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=action, headers=WRITE).status_code == 201
    summary = client.get("/api/v1/metrics/summary", headers=READ).json()
    assert summary["postmortems"]["count"] == 2 and summary["actions"]["count"] == 1
    assert summary["actions"]["overdue"] == 1 and summary["incidents"]["count"] == 3
    by_service = client.get("/api/v1/metrics/summary", params={"service": "Checkout API"}, headers=READ).json()
    assert by_service["actions"]["count"] == 1 and by_service["postmortems"]["count"] == 2
    report = client.get(f"/api/v1/postmortems/{pm['id']}/report", params={"audience": "engineering"}, headers=READ)
    assert report.status_code == 200
    assert "Checkout API down" in report.text and "Checkout API 5xx" in report.text

    # Taken out by hand, the Opsgenie alert stays without a postmortem even when it becomes P1 later.
    moved = _patch(client, pm["id"], incident_ids=[pd["id"]])
    assert moved.status_code == 200 and moved.json()["incident_ids"] == [pd["id"]]
    revisions = client.get(f"/api/v1/postmortems/{pm['id']}/revisions", headers=READ).json()["items"]
    assert revisions[-1]["changes"]["incident_ids"] == {"from": [pd["id"], og["id"]], "to": [pd["id"]]}
    assert post_og(client, _og_create("og-alert-1", "P1", 1775115679891000000)).status_code == 202
    assert client.get(f"/api/v1/incidents/{og['id']}", headers=READ).json()["postmortem_id"] is None
