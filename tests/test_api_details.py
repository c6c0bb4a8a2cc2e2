"""Small things users trip over: dates as times, owner case, impact order, revision pages, the issue label, offline
docs, the version."""

from __future__ import annotations

import subprocess
import sys

from fastapi.testclient import TestClient

from app.context import Context
from app.worker import Worker
from tests.fakes.fake_jira import FakeJira
from tests.helpers import READ, WRITE, add_finding, make_postmortem, pd_event, post_pd
from tests.tracker_fixtures import api, fake_jira, new_action, tracker_mappings, wired

__all__ = ["api", "fake_jira", "tracker_mappings", "wired"]


def _incident(client: TestClient, key: str, at: str) -> dict:
    post_pd(client, pd_event("incident.triggered", event_id=f"E-{key}", incident_id=key, at=at, urgency="low"))
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    return dict(next(i for i in items if i["external_id"] == key))


def test_a_date_is_midnight_utc_in_since_and_until(client: TestClient) -> None:
    _incident(client, "MARCH", "2026-03-31T23:59:59.000Z")
    _incident(client, "APRIL", "2026-04-01T00:00:00.000Z")
    listed = client.get("/api/v1/incidents", params={"since": "2026-04-01"}, headers=READ)
    assert listed.status_code == 200, listed.text
    assert [i["external_id"] for i in listed.json()["items"]] == ["APRIL"]
    summary = client.get("/api/v1/metrics/summary", params={"since": "2026-03-01", "until": "2026-04-01"}, headers=READ)
    assert summary.status_code == 200, summary.text
    assert summary.json()["incidents"]["count"] == 1
    assert summary.json()["window"]["since"] == "2026-03-01T00:00:00Z"
    # A time without an offset is still refused: which zone it meant is a guess.
    naive = client.get("/api/v1/incidents", params={"since": "2026-04-01T00:00:00"}, headers=READ)
    assert naive.status_code == 422
    assert client.get("/api/v1/incidents", params={"since": "2026-13-01"}, headers=READ).status_code == 422


def test_times_at_the_edge_of_the_calendar_are_422_not_500(client: TestClient) -> None:
    # Valid ISO 8601 with an offset, but no UTC time a column can hold: 9999-12-31T23:59:59-01:00 is year 10000 in UTC.
    pm = make_postmortem(client, _incident(client, "Q1", "2026-01-01T00:00:00.000Z")["id"])
    for edge in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        for route in ("/api/v1/incidents", "/api/v1/metrics/summary"):
            answer = client.get(route, params={"since": edge}, headers=READ)
            assert answer.status_code == 422 and "out of range" in answer.text, (route, answer.text)
        patched = client.patch(f"/api/v1/postmortems/{pm['id']}", json={"impact_start": edge}, headers=WRITE)
        assert patched.status_code == 422 and "out of range" in patched.text, patched.text
    inside = client.get("/api/v1/incidents", params={"since": "9999-12-31T22:59:59-01:00"}, headers=READ)
    assert inside.status_code == 200, inside.text


def test_nul_in_text_is_refused_alike_on_both_databases(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client, "Q1", "2026-01-01T00:00:00.000Z")["id"])
    refused = client.post(
        f"/api/v1/postmortems/{pm['id']}/findings",
        json={"kind": "root_cause", "statement": "disk\x00full"},
        headers=WRITE,
    )
    assert refused.status_code == 422 and "NUL" in refused.text, refused.text
    assert client.get(f"/api/v1/postmortems/{pm['id']}", headers=READ).json()["findings"] == []


def test_owner_filter_ignores_case(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client, "Q1", "2026-01-01T00:00:00.000Z")["id"])
    finding = add_finding(client, pm["id"])
    for title, owner in (("mixed", "Alice@Example.com"), ("lower", "alice@example.com"), ("other", "bob@example.com")):
        body = {"title": title, "owner": owner, "finding_ids": [finding["id"]]}
        assert client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=body, headers=WRITE).status_code == 201
    found = client.get("/api/v1/actions", params={"owner": "ALICE@example.COM"}, headers=READ).json()["items"]
    assert [(a["title"], a["owner"]) for a in found] == [("mixed", "Alice@Example.com"), ("lower", "alice@example.com")]
    bob = found[1]["id"]
    assert client.patch(f"/api/v1/actions/{bob}", json={"owner": "Bob@Example.com"}, headers=WRITE).status_code == 200
    found = client.get("/api/v1/actions", params={"owner": "bob@example.com"}, headers=READ).json()["items"]
    assert sorted(a["title"] for a in found) == ["lower", "other"]


def test_impact_end_before_start_is_422_and_revisions_are_a_page_with_z_times(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client, "Q1", "2026-01-01T00:00:00.000Z")["id"])
    backwards = {"impact_start": "2026-01-01T10:00:00Z", "impact_end": "2026-01-01T09:00:00Z"}
    response = client.patch(f"/api/v1/postmortems/{pm['id']}", json=backwards, headers=WRITE)
    assert response.status_code == 422 and "impact_end" in response.json()["detail"]
    assert client.get(f"/api/v1/postmortems/{pm['id']}", headers=READ).json()["version"] == 1
    start = {"impact_start": "2026-01-01T11:00:00+02:00"}
    assert client.patch(f"/api/v1/postmortems/{pm['id']}", json=start, headers=WRITE).status_code == 200
    assert client.patch(f"/api/v1/postmortems/{pm['id']}", json={"summary": "s"}, headers=WRITE).status_code == 200
    first = client.get(f"/api/v1/postmortems/{pm['id']}/revisions", params={"limit": 2}, headers=READ)
    assert first.status_code == 200, first.text
    page = first.json()
    assert set(page) == {"items", "next_cursor"} and [r["version"] for r in page["items"]] == [1, 2]
    assert page["items"][1]["changes"]["impact_start"] == {"from": None, "to": "2026-01-01T09:00:00Z"}
    assert page["items"][0]["at"].endswith("Z")
    rest = client.get(
        f"/api/v1/postmortems/{pm['id']}/revisions", params={"cursor": page["next_cursor"]}, headers=READ
    ).json()
    assert [r["version"] for r in rest["items"]] == [3] and rest["next_cursor"] is None


def test_the_issue_label_names_the_postmortem_once(api: TestClient, wired: Context, fake_jira: FakeJira) -> None:
    action = new_action(api)
    Worker(wired).run_once()
    labels = fake_jira.issues["OPS-1"].fields["labels"]
    assert f"pm-{action['postmortem_id']}" in labels
    assert not [label for label in labels if label.startswith("pm-pm-")], labels


def test_docs_work_offline(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "cdn." not in page.text and "unpkg" not in page.text
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    assert scripts, page.text
    for src in scripts:
        served = client.get(src)
        assert served.status_code == 200 and "javascript" in served.headers["content-type"], src
        assert len(served.content) > 100_000  # the Swagger UI bundle itself, not a stub


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("aftermath ")
    from app import __version__

    assert result.stdout.split()[1] == __version__ != "0+unknown"
