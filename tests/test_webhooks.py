"""Webhook routes end to end: authentication, storage, dedupe, ignored and dead-letter events, size cap."""

from __future__ import annotations

import base64
import json
import random

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app.context import Context
from app.inbox import InboundEvent
from tests.helpers import READ, payload, pd_event, pd_signature, post_og, post_pd

PD_FILES = [
    "incA_01_triggered.json",
    "incA_02_acknowledged.json",
    "incA_03_priority_updated.json",
    "incA_04_annotated.json",
    "incA_05_status_update_published.json",
    "incA_06_resolved.json",
    "incA_07_reopened.json",
    "incA_08_resolved_again.json",
]
OG_FILES = [
    "og1_01_create.json",
    "og1_02_escalate.json",
    "og1_03_acknowledge.json",
    "og1_04_addnote.json",
    "og1_05_updatepriority.json",
    "og1_06_addtags.json",
    "og1_07_close.json",
]


def _inbox(context: Context) -> list[InboundEvent]:
    with context.read() as session:
        return list(session.exec(select(InboundEvent)).all())


def test_pagerduty_lifecycle_builds_incident_timeline_and_postmortem(client: TestClient) -> None:
    for name in PD_FILES:
        response = post_pd(client, payload(f"pagerduty/{name}"))
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "accepted"
    incidents = client.get("/api/v1/incidents", headers=READ).json()["items"]
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["status"] == "resolved"
    assert incident["source"] == "pagerduty" and incident["external_id"] == "Q1VZ8M2KX4TB7N"
    kinds = [entry["kind"] for entry in incident["timeline"]]
    assert kinds[0] == "triggered" and "acknowledged" in kinds and "priority_changed" in kinds
    assert "note" in kinds and kinds.count("resolved") == 2 and "reopened" in kinds
    assert incident["acknowledged_at"] is not None and incident["resolved_at"] > incident["triggered_at"]
    # The priority update made it P1, so the severity rule opened a postmortem.
    assert incident["postmortem_id"] is not None
    postmortem = client.get(f"/api/v1/postmortems/{incident['postmortem_id']}", headers=READ).json()
    assert postmortem["key"] == f"PM-{postmortem['id']}" and postmortem["incident_ids"] == [incident["id"]]


def test_out_of_order_delivery_gives_the_same_incident(client: TestClient, context: Context) -> None:
    bodies = [payload(f"pagerduty/{name}") for name in PD_FILES]
    for body in bodies:
        post_pd(client, body)
    in_order = client.get("/api/v1/incidents", headers=READ).json()["items"][0]
    for seed in range(3):
        shuffled = bodies[:]
        random.Random(seed).shuffle(shuffled)
        # Re-key the incident so each shuffle builds a fresh one from the same events.
        for body in shuffled:
            text = body.decode().replace("Q1VZ8M2KX4TB7N", f"QSHUFFLE{seed}").replace('"id": "01J', f'"id": "{seed}J')
            assert post_pd(client, text.encode()).status_code == 202
        incidents = client.get("/api/v1/incidents", params={"limit": 10}, headers=READ).json()["items"]
        shuffled_incident = next(i for i in incidents if i["external_id"] == f"QSHUFFLE{seed}")
        for field in ("status", "triggered_at", "acknowledged_at", "resolved_at", "severity", "title", "priority"):
            assert shuffled_incident[field] == in_order[field], field
        strip = [(e["at"], e["kind"], e["actor"], e["text"]) for e in in_order["timeline"]]
        assert [(e["at"], e["kind"], e["actor"], e["text"]) for e in shuffled_incident["timeline"]] == strip


def test_opsgenie_lifecycle_and_nanosecond_times(client: TestClient) -> None:
    for name in OG_FILES:
        response = post_og(client, payload(f"opsgenie/{name}"))
        assert response.status_code == 202, response.text
    incident = client.get("/api/v1/incidents", headers=READ).json()["items"][0]
    assert incident["source"] == "opsgenie" and incident["status"] == "resolved"
    create = json.loads(payload("opsgenie/og1_01_create.json"))
    # createdAt is milliseconds, updatedAt nanoseconds: both must land on the same day, not in 1970 or year 50000.
    assert incident["triggered_at"].startswith("2026-04-02")
    assert incident["title"] == create["alert"]["message"]
    kinds = [e["kind"] for e in incident["timeline"]]
    assert {"triggered", "escalated", "acknowledged", "note", "priority_changed", "resolved"} <= set(kinds)


def test_redelivery_is_duplicate_and_changes_nothing(client: TestClient, context: Context) -> None:
    body = payload("pagerduty/incA_01_triggered.json")
    assert post_pd(client, body).json()["status"] == "accepted"
    again = post_pd(client, body)
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    og = payload("opsgenie/og1_01_create.json")
    assert post_og(client, og).json()["status"] == "accepted"
    assert post_og(client, og).json()["status"] == "duplicate"
    assert len(_inbox(context)) == 2
    incident = client.get("/api/v1/incidents", headers=READ).json()["items"][0]
    assert len(incident["timeline"]) == 1


def test_ping_is_ignored_but_kept(client: TestClient, context: Context) -> None:
    response = post_pd(client, payload("pagerduty/ping_pagey.json"))
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    rows = _inbox(context)
    assert [r.status for r in rows] == ["ignored"]
    assert client.get("/api/v1/incidents", headers=READ).json()["items"] == []


def test_opsgenie_custom_action_is_ignored(client: TestClient) -> None:
    body = json.dumps({"action": "TestAction", "alert": {"alertId": "a-1", "updatedAt": 1775115678891000000}})
    response = post_og(client, body.encode())
    assert response.status_code == 202 and response.json()["status"] == "ignored"


def test_rotated_signatures_any_secret_any_entry(client: TestClient) -> None:
    body = pd_event("incident.triggered", event_id="ROT1")
    header = f"v1={'0' * 64},{pd_signature(body, 'pd-secret-old')}"
    response = client.post("/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": header})
    assert response.status_code == 202


def test_bad_or_missing_credentials_store_nothing(client: TestClient, context: Context) -> None:
    body = pd_event("incident.triggered", event_id="BAD1")
    assert client.post("/webhooks/pagerduty", content=body).status_code == 401
    wrong = {"X-PagerDuty-Signature": pd_signature(body, "not-a-configured-secret")}
    assert client.post("/webhooks/pagerduty", content=body, headers=wrong).status_code == 401
    og = payload("opsgenie/og1_01_create.json")
    assert client.post("/webhooks/opsgenie", content=og).status_code == 401
    assert post_og(client, og, token="wrong").status_code == 401
    basic = client.post("/webhooks/opsgenie", content=og, auth=("opsgenie", "og-token"))
    assert basic.status_code == 202
    assert [r.source for r in _inbox(context)] == ["opsgenie"]


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Basic",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"og-token").decode(),  # no colon
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"og-token:x").decode(),  # the token as the user name
        "Bearer og-token",
        "og-token",
    ],
)
def test_opsgenie_malformed_basic_is_no_credential(client: TestClient, context: Context, authorization: str) -> None:
    og = payload("opsgenie/og1_01_create.json")
    refused = client.post("/webhooks/opsgenie", content=og, headers={"Authorization": authorization})
    assert refused.status_code == 401 and _inbox(context) == []
    # A broken Basic header does not spoil a good X-Aftermath-Token beside it.
    both = {"Authorization": authorization, "X-Aftermath-Token": "og-token"}
    assert client.post("/webhooks/opsgenie", content=og, headers=both).status_code == 202


def test_malformed_bodies_are_dead_letters_with_a_clear_detail(client: TestClient, context: Context) -> None:
    not_json = post_pd(client, b"{not json")
    assert not_json.status_code == 400 and "JSON" in json.dumps(not_json.json()["detail"]).upper()
    wrong_shape = post_pd(client, b'{"messages": [{"event": "incident.trigger"}]}')
    assert wrong_shape.status_code == 422 and "v3" in wrong_shape.json()["detail"]
    og = post_og(client, b'{"alert": {}}')
    assert og.status_code == 422 and "action" in og.json()["detail"]
    rows = _inbox(context)
    assert len(rows) == 3 and {r.status for r in rows} == {"dead_letter"}
    assert all(r.reason for r in rows)


def test_body_over_one_mebibyte_is_refused_before_parsing(client: TestClient, context: Context) -> None:
    big = b'{"event": {"id": "X", "pad": "' + b"x" * (1024 * 1024) + b'"}}'
    response = post_pd(client, big)
    assert response.status_code == 413
    chunked = client.post(
        "/webhooks/opsgenie", content=iter([b"x" * 600_000, b"y" * 600_000]), headers={"X-Aftermath-Token": "og-token"}
    )
    assert chunked.status_code == 413
    assert _inbox(context) == []


def test_disabled_sources_refuse(database_url: str) -> None:
    from app.api.main import create_app
    from app.context import build_context
    from tests.conftest import make_settings

    ctx = build_context(make_settings(database_url, pagerduty_secrets=[], opsgenie_token=None))
    with TestClient(create_app(ctx, embedded_worker=False)) as c:
        body = pd_event("incident.triggered", event_id="OFF1")
        assert (
            c.post(
                "/webhooks/pagerduty", content=body, headers={"X-PagerDuty-Signature": pd_signature(body)}
            ).status_code
            == 401
        )
        assert c.post("/webhooks/opsgenie", content=b"{}", headers={"X-Aftermath-Token": ""}).status_code == 401
    ctx.engine.dispose()


def _og(action: str, updated_ns: int, **alert: object) -> bytes:
    body = {
        "action": action,
        "alert": {
            "alertId": "og-alert-1-1775115678512",
            "message": "Queue backlog",
            "createdAt": 1775115678512,
            "updatedAt": updated_ns,
            "username": "ops@example.com",
            **alert,
        },
        "integrationId": "int-1",
        "integrationName": "aftermath",
    }
    return json.dumps(body).encode()


def test_opsgenie_second_create_for_an_added_team_changes_no_state(client: TestClient) -> None:
    assert post_og(client, _og("Create", 1775115678891000000, priority=1)).json()["status"] == "accepted"
    assert post_og(client, _og("Acknowledge", 1775115700000000000)).status_code == 202
    # Opsgenie sends Create again to the integrations of a team added later.
    assert post_og(client, _og("Create", 1775115800000000000, team="DBA")).json()["status"] == "accepted"
    incident = client.get("/api/v1/incidents", headers=READ).json()["items"][0]
    assert incident["status"] == "acknowledged"
    assert incident["triggered_at"].startswith("2026-04-02T07:41:18.891")
    assert incident["severity"] == "sev1"  # int priority 1 read as P1
    assert [e["kind"] for e in incident["timeline"]] == ["triggered", "acknowledged", "triggered"]


def test_opsgenie_missing_priority_is_the_default_p3(client: TestClient) -> None:
    post_og(client, _og("Create", 1775115678891000000))
    assert client.get("/api/v1/incidents", headers=READ).json()["items"][0]["severity"] == "sev3"
