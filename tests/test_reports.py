"""Postmortem reports: snapshot per audience of one fixed postmortem, HTML escaping, and the route's answers.

UPDATE_SNAPSHOTS=1 rewrites tests/snapshots/report_*.md from the current output (review the diff before committing).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import reports
from app.actions import Action
from app.context import Context
from app.db import utcnow
from tests.helpers import READ, WRITE, first_incident, pd_event, post_pd

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
# Overdue flags depend on the date; the snapshots are rendered as of this one.
AS_OF = date(2026, 4, 1)
TRACKER_STATUS = {"open": "To Do", "in_progress": "In Progress", "done": "Done", "wont_do": "Won't Do"}


def _annotated(event_id: str, at: str, content: str) -> bytes:
    incident = {"id": "Q2TEST0000001", "type": "incident_reference", "summary": "Checkout API down"}
    data = {"id": "PNOTE1", "type": "incident_note", "content": content, "incident": incident}
    event = {"id": event_id, "event_type": "incident.annotated", "resource_type": "incident", "occurred_at": at}
    agent = {"id": "PU1", "type": "user_reference", "summary": "Alice"}
    return json.dumps({"event": {**event, "agent": agent, "client": None, "data": data}}).encode()


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    return dict(response.json())


def build_fixed_postmortem(client: TestClient, context: Context) -> int:
    """One incident with a full timeline, four findings and five actions covering every action status."""
    for event in (
        pd_event("incident.triggered", event_id="E1", at="2026-03-14T09:12:04.617Z", priority="P1"),
        pd_event("incident.acknowledged", event_id="E2", at="2026-03-14T09:20:31.000Z", priority="P1"),
        _annotated("E3", "2026-03-14T09:31:00.000Z", "Rolled back checkout-api to v2026.03.13-2; p99 at 1.4s"),
        pd_event("incident.resolved", event_id="E4", at="2026-03-14T10:47:09.000Z", priority="P1", status="resolved"),
    ):
        assert post_pd(client, event).status_code == 202
    incident = first_incident(client)
    assert incident["postmortem_id"] is not None, "P1 must open a postmortem by rule"
    pm_id = int(incident["postmortem_id"])
    patch = {
        "owner": "alice@example.com",
        "summary": "Checkout failed for 1h 35m after a pool-size regression.\n\nA rollback restored service.",
        "customer_impact": "About 18% of checkout attempts failed; card payments timed out.",
        "impact_start": "2026-03-14T09:05:00Z",
        "impact_end": "2026-03-14T10:40:00Z",
        "review_due": "2026-03-21",
        "participants": [
            {"who": "dana@example.com", "role": "facilitator", "function": "operations"},
            {"who": "alice@example.com", "role": "author", "function": "engineering"},
            {"who": "erin@example.com", "role": "reviewer", "function": "support"},
        ],
    }
    assert client.patch(f"/api/v1/postmortems/{pm_id}", json=patch, headers=WRITE).status_code == 200
    findings = f"/api/v1/postmortems/{pm_id}/findings"
    root = _post(
        client,
        findings,
        {
            "kind": "root_cause",
            "statement": "The payments client pool shrank from 50 to 10 connections in release 2026.03.13-1.",
            "evidence": "Pool wait time graph: 0 ms → 2.1 s at 09:04.\nDiff of config/payments.yaml in PR #4411.",
            "category": "capacity",
            "whys": [
                "Checkout requests timed out waiting for a payments connection.",
                "The pool had 10 connections instead of 50.",
                "A config refactor dropped the override and the library default applied.",
                "No test checks effective pool settings.",
                "Config defaults are not reviewed as part of releases.",
            ],
        },
    )
    factor = _post(
        client,
        findings,
        {"kind": "contributing_factor", "statement": "Retries doubled load on the pool.", "category": "resilience"},
    )
    gap = _post(
        client,
        findings,
        {
            "kind": "detection_gap",
            "statement": "No alert on pool saturation; the first page came from the p99 latency alert 7 minutes late.",
            "evidence": "Alert history for checkout-api.",
            "category": "monitoring",
        },
    )
    slow = _post(
        client,
        findings,
        {
            "kind": "response_gap",
            "statement": "The rollback runbook was out of date.",
            "accepted_risk": "Rollbacks are rehearsed every quarter; Dana (SRE lead) accepts the gap until then.",
        },
    )
    actions = f"/api/v1/postmortems/{pm_id}/actions"
    specs = [
        ("Restore pool size to 50 and pin it", "technical", [root["id"]], "2026-03-28", "high", "done"),
        ("Alert on pool saturation above 80%", "monitoring", [gap["id"]], "2026-03-21", "critical", "open"),
        (
            "Add config review to the release checklist",
            "process",
            [root["id"], factor["id"]],
            "2099-01-01",
            "medium",
            None,
        ),
        ("Name a payments on-call secondary", "organizational", [factor["id"]], "2026-04-15", "low", "in_progress"),
        ("Load test retries against a small pool", "test", [slow["id"]], None, "low", "wont_do"),
    ]
    created = []
    for title, kind, finding_ids, due, priority, _status in specs:
        body: dict[str, Any] = {"title": title, "kind": kind, "finding_ids": finding_ids, "priority": priority}
        body |= {"owner": "bob@example.com", "due_date": due, "success_metric": f"{title}: verified in review"}
        if kind == "technical":
            body["description"] = (
                "Set max_size: 50 in config/payments.yaml.\nAdd a startup check that logs the pool size."
            )
            body |= {"control": "test", "counterfactual": "A config test would have failed release 2026.03.13-1."}
        if kind == "monitoring":
            body |= {"control": "alerting", "counterfactual": "Paged at 09:04, eight minutes before the p99 alert."}
        created.append(_post(client, actions, body))
    # The tracker loop lives elsewhere: give the actions their filed state directly.
    with context.write() as session:
        for n, ((*_, status), body) in enumerate(zip(specs, created, strict=True), start=101):
            action = session.get(Action, body["id"])
            assert action is not None
            if status is None:
                action.last_error = "Jira answered 400: project OPS has no issue type Task"
            else:
                action.status, action.tracker_status = status, TRACKER_STATUS[status]
                action.tracker_key, action.tracker_url = f"OPS-{n}", f"https://acme.atlassian.net/browse/OPS-{n}"
                action.filed_at = datetime(2026, 3, 15, 8, 0, n - 100, tzinfo=UTC)
            if status in ("done", "wont_do"):
                action.closed_at = datetime(2026, 3, 20, 16, 30, tzinfo=UTC)
            if body["due_date"] == "2026-03-21":  # overdue: its escalation reached the owner's manager
                action.escalation_level, action.escalated_at = 1, datetime(2026, 3, 25, 0, 1, tzinfo=UTC)
            session.add(action)
    return pm_id


@pytest.mark.parametrize("audience", reports.AUDIENCES)
def test_report_matches_snapshot(client: TestClient, context: Context, audience: reports.Audience) -> None:
    pm_id = build_fixed_postmortem(client, context)
    with context.read() as session:
        text = reports.render(session, pm_id, audience, AS_OF)
    snapshot = SNAPSHOTS / f"report_{audience}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        snapshot.write_text(text, encoding="utf-8")
    assert snapshot.exists(), f"no snapshot {snapshot.name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert text == snapshot.read_text(encoding="utf-8")


def test_route_serves_the_same_markdown_and_html(client: TestClient, context: Context) -> None:
    pm_id = build_fixed_postmortem(client, context)
    for audience in reports.AUDIENCES:
        before = utcnow().date()
        response = client.get(f"/api/v1/postmortems/{pm_id}/report", params={"audience": audience}, headers=READ)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/markdown; charset=utf-8"
        with context.read() as session:  # the route renders as of today (either side of a midnight in between)
            expected = {reports.render(session, pm_id, audience, day) for day in (before, utcnow().date())}
        assert response.text in expected
    page = client.get(
        f"/api/v1/postmortems/{pm_id}/report", params={"audience": "engineering", "format": "html"}, headers=READ
    )
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    body = page.text
    assert body.startswith("<!doctype html>") and "<title>PM-1 · engineering report</title>" in body
    assert "<table>" in body and '<a href="https://acme.atlassian.net/browse/OPS-101">OPS-101</a>' in body
    assert "<h3>Finding 1 · Root cause · capacity</h3>" in body


def test_user_text_cannot_inject_markup(client: TestClient, context: Context) -> None:
    pm_id = build_fixed_postmortem(client, context)
    nasty = '<script>alert("x")</script> & <b>bold</b> | *star* [click](javascript:alert(1))'
    finding = _post(
        client,
        f"/api/v1/postmortems/{pm_id}/findings",
        {"kind": "detection_gap", "statement": nasty, "evidence": "# not a heading\n---\n1. not a list"},
    )
    with context.write() as session:
        action = session.get(Action, 1)
        assert action is not None
        action.tracker_url = "javascript:alert(document.cookie)"
        session.add(action)
    for audience in reports.AUDIENCES:
        page = client.get(
            f"/api/v1/postmortems/{pm_id}/report", params={"audience": audience, "format": "html"}, headers=READ
        ).text
        assert "<script>" not in page and "<b>" not in page
        assert 'href="javascript' not in page and "document.cookie" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; | *star*" in page
    markdown = client.get(f"/api/v1/postmortems/{pm_id}/report", params={"audience": "engineering"}, headers=READ).text
    assert r"\<script\>" in markdown and r"\*star\* \[click\]" in markdown
    # Block markers at line starts stay text: no heading, rule or list comes out of the evidence.
    assert "\\# not a heading\\\n\\---\\\n1\\. not a list" in markdown
    html = reports.to_html(markdown, "t")
    assert (
        "<h1># not" not in html
        and "<hr" not in html
        and "<p># not a heading<br />\n---<br />\n1. not a list</p>" in html
    )
    assert f"Finding {finding['id']}" in markdown


def test_read_token_suffices_and_errors_are_clean(client: TestClient, context: Context) -> None:
    pm_id = build_fixed_postmortem(client, context)
    url = f"/api/v1/postmortems/{pm_id}/report"
    assert client.get(url, params={"audience": "executive"}).status_code == 401
    assert client.get(url, params={"audience": "executive"}, headers=READ).status_code == 200
    assert client.get(url, params={"audience": "executive"}, auth=("browser", "test-reader-token")).status_code == 200
    assert client.get(url, params={"audience": "operations"}, headers=WRITE).status_code == 200
    missing = client.get("/api/v1/postmortems/999/report", params={"audience": "executive"}, headers=READ)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    for params in ({}, {"audience": "board"}, {"audience": "executive", "format": "pdf"}, {"audience": ""}):
        bad = client.get(url, params=params, headers=READ)
        assert bad.status_code == 422, params
        assert bad.json()["detail"]
    assert client.get("/api/v1/postmortems/0/report", params={"audience": "executive"}, headers=READ).status_code == 422


def test_empty_postmortem_renders_for_every_audience(client: TestClient, context: Context) -> None:
    post_pd(client, pd_event("incident.triggered", event_id="E1", urgency="low", at="2026-03-14T09:12:04.617Z"))
    incident = first_incident(client)
    pm = client.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE).json()
    with context.read() as session:
        texts = {a: reports.render(session, pm["id"], a, AS_OF) for a in reports.AUDIENCES}
    assert (
        "No findings recorded yet." in texts["executive"] and "ongoing since 2026-03-14T09:12:04Z" in texts["executive"]
    )
    assert "No actions recorded yet." in texts["engineering"]
    assert "No detection gaps were recorded." in texts["operations"]
    assert "Nothing changes for on-call" in texts["operations"]


def test_markdown_helpers() -> None:
    assert reports.md("  a\n b  ") == "a b"
    assert reports.md("12. x") == r"12\. x" and reports.md("- x") == r"\- x" and reports.md("a|b") == r"a\|b"
    assert reports.link("k", "https://x.test/a b") == "[k](<https://x.test/a%20b>)"
    assert reports.link("k", "data:text/html,x") == "k"
    assert (
        reports.duration(None) == "—" and reports.duration(datetime(2026, 1, 2) - datetime(2026, 1, 1)) == "1d 0h 00m"
    )
    assert reports.timestamp(datetime(2026, 3, 14, 9, 12, 4, 617000, tzinfo=UTC)) == "2026-03-14T09:12:04Z"


def test_the_executive_report_tells_an_accepted_risk_from_an_open_finding(client: TestClient) -> None:
    post_pd(client, pd_event("incident.triggered", event_id="E-RISK", incident_id="RISK", urgency="low"))
    pm = _post(client, f"/api/v1/incidents/{first_incident(client)['id']}/postmortem", {})
    findings = f"/api/v1/postmortems/{pm['id']}/findings"
    _post(
        client, findings, {"kind": "response_gap", "statement": "Runbook stale.", "accepted_risk": "Dana accepts it."}
    )
    _post(client, findings, {"kind": "detection_gap", "statement": "No pool alert."})
    report = client.get(f"/api/v1/postmortems/{pm['id']}/report", params={"audience": "executive"}, headers=READ).text
    assert "Runbook stale. (finding 1) — risk accepted" in report, report
    assert "No pool alert. (finding 2) — no completed action yet" in report, report
