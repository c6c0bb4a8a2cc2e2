"""REST API through its routes: postmortems (versioned), findings, actions with every filter, ledger."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient
from sqlmodel import select

from app.context import Context
from tests.helpers import READ, WRITE, add_finding, make_postmortem, pd_event, post_pd


def _incident(client: TestClient, key: str = "Q1", **kw: object) -> dict:
    post_pd(client, pd_event("incident.triggered", event_id=f"E-{key}", incident_id=key, **kw))  # type: ignore[arg-type]
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    return next(i for i in items if i["external_id"] == key)


def test_low_severity_incident_gets_no_automatic_postmortem_but_can_open_one_by_hand(client: TestClient) -> None:
    incident = _incident(client, urgency="low", at="2099-01-01T00:00:00.000Z")
    assert incident["severity"] == "sev4" and incident["postmortem_id"] is None
    first = client.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE)
    assert first.status_code == 201
    again = client.post(f"/api/v1/incidents/{incident['id']}/postmortem", headers=WRITE)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert client.get(f"/api/v1/incidents/{incident['id']}", headers=READ).json()["postmortem_id"] == first.json()["id"]


def test_postmortem_updates_are_versioned_with_author_and_fields(client: TestClient) -> None:
    incident = _incident(client, urgency="low", at="2099-01-01T00:00:00.000Z")
    pm = make_postmortem(client, incident["id"])
    assert pm["version"] == 1 and pm["status"] == "draft"
    changed = client.patch(
        f"/api/v1/postmortems/{pm['id']}",
        json={"summary": "DB pool exhausted", "owner": "alice@example.com", "version": 1},
        headers=WRITE,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    stale = client.patch(f"/api/v1/postmortems/{pm['id']}", json={"summary": "x", "version": 1}, headers=WRITE)
    assert stale.status_code == 409 and "version" in stale.json()["detail"]
    skip = client.patch(f"/api/v1/postmortems/{pm['id']}", json={"status": "published"}, headers=WRITE)
    assert skip.status_code == 409 and "in_review" in skip.json()["detail"]
    assert (
        client.patch(f"/api/v1/postmortems/{pm['id']}", json={"status": "in_review"}, headers=WRITE).status_code == 200
    )
    revisions = client.get(f"/api/v1/postmortems/{pm['id']}/revisions", headers=READ).json()["items"]
    assert [r["version"] for r in revisions] == [1, 2, 3]
    assert revisions[1]["author"] == "writer"
    assert revisions[1]["changes"]["summary"] == {"from": None, "to": "DB pool exhausted"}
    assert set(revisions[1]["changes"]) == {"summary", "owner"}
    # A PATCH that changes nothing makes no revision.
    same = client.patch(f"/api/v1/postmortems/{pm['id']}", json={"summary": "DB pool exhausted"}, headers=WRITE)
    assert same.json()["version"] == 3


def test_patch_refuses_nulls_unknown_fields_and_naive_times(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client)["id"])
    for body in ({"title": None}, {"nonsense": 1}, {"impact_start": "2026-01-01T00:00:00"}, {"status": "done"}):
        response = client.patch(f"/api/v1/postmortems/{pm['id']}", json=body, headers=WRITE)
        assert response.status_code == 422, body
        assert response.json()["detail"]


def test_findings_and_actions_chain(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client)["id"])
    finding = add_finding(client, pm["id"], whys=["pool size 10", "default never tuned"])
    assert finding["whys"] == ["pool size 10", "default never tuned"]
    patched = client.patch(f"/api/v1/findings/{finding['id']}", json={"evidence": "graph"}, headers=WRITE)
    assert patched.status_code == 200 and patched.json()["evidence"] == "graph"
    no_finding = client.post(
        f"/api/v1/postmortems/{pm['id']}/actions", json={"title": "x", "finding_ids": []}, headers=WRITE
    )
    assert no_finding.status_code == 422
    unknown = client.post(
        f"/api/v1/postmortems/{pm['id']}/actions", json={"title": "x", "finding_ids": [999]}, headers=WRITE
    )
    assert unknown.status_code == 422 and "999" in unknown.json()["detail"]
    action = client.post(
        f"/api/v1/postmortems/{pm['id']}/actions",
        json={
            "title": "Raise pool size",
            "owner": "alice@example.com",
            "due_date": "2030-01-01",
            "finding_ids": [finding["id"]],
            "success_metric": "no pool waits for 30 days",
        },
        headers=WRITE,
    )
    assert action.status_code == 201, action.text
    body = action.json()
    assert body["status"] == "unfiled" and body["finding_ids"] == [finding["id"]]
    # No service mapping matches "Checkout API"? It does: the shipped trackers.yaml files it in Jira OPS.
    assert body["tracker"] == {"kind": "jira", "project": "OPS", "issue_type": "Task"}
    full = client.get(f"/api/v1/postmortems/{pm['id']}", headers=READ).json()
    assert [f["id"] for f in full["findings"]] == [finding["id"]] and full["actions"][0]["id"] == body["id"]


def test_action_from_another_postmortems_finding_is_refused(client: TestClient) -> None:
    pm1 = make_postmortem(client, _incident(client, "A")["id"])
    pm2 = make_postmortem(client, _incident(client, "B")["id"])
    finding = add_finding(client, pm1["id"])
    response = client.post(
        f"/api/v1/postmortems/{pm2['id']}/actions", json={"title": "x", "finding_ids": [finding["id"]]}, headers=WRITE
    )
    assert response.status_code == 422 and "another postmortem" in response.json()["detail"]


def test_action_filters_and_pagination(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client)["id"])
    f1, f2 = add_finding(client, pm["id"]), add_finding(client, pm["id"], kind="detection_gap")
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    specs = [
        {"title": "late", "owner": "alice@example.com", "due_date": yesterday, "finding_ids": [f1["id"]]},
        {
            "title": "future",
            "owner": "bob@example.com",
            "due_date": "2099-01-01",
            "finding_ids": [f2["id"]],
            "tracker": {"kind": "github", "repo": "acme/web"},
        },
        {"title": "both", "owner": "alice@example.com", "finding_ids": [f1["id"], f2["id"]]},
    ]
    ids = []
    for spec in specs:
        response = client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=spec, headers=WRITE)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    def titles(**params: object) -> list[str]:
        response = client.get("/api/v1/actions", params=params, headers=READ)
        assert response.status_code == 200, response.text
        return [a["title"] for a in response.json()["items"]]

    assert titles(owner="alice@example.com") == ["late", "both"]
    assert titles(overdue="true") == ["late"]
    assert titles(overdue="false") == ["future", "both"]
    assert titles(finding_id=f2["id"]) == ["future", "both"]
    assert titles(tracker="github") == ["future"]
    assert titles(tracker="jira") == ["late", "both"]
    assert titles(postmortem_id=pm["id"], status="unfiled") == ["late", "future", "both"]
    assert titles(status="done") == []
    assert titles(postmortem_id=9999) == []
    page1 = client.get("/api/v1/actions", params={"limit": 2}, headers=READ).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = client.get("/api/v1/actions", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=READ).json()
    assert [a["title"] for a in page2["items"]] == ["both"] and page2["next_cursor"] is None
    assert client.get("/api/v1/actions", params={"cursor": "abc"}, headers=READ).status_code == 422
    assert client.get("/api/v1/actions", params={"limit": 501}, headers=READ).status_code == 422
    assert client.get("/api/v1/actions", params={"status": "bogus"}, headers=READ).status_code == 422


def test_owner_and_due_date_changes_go_to_the_ledger(client: TestClient) -> None:
    pm = make_postmortem(client, _incident(client)["id"])
    finding = add_finding(client, pm["id"])
    action = client.post(
        f"/api/v1/postmortems/{pm['id']}/actions",
        json={"title": "t", "owner": "alice@example.com", "finding_ids": [finding["id"]]},
        headers=WRITE,
    ).json()
    response = client.patch(
        f"/api/v1/actions/{action['id']}", json={"owner": "bob@example.com", "due_date": "2031-02-03"}, headers=WRITE
    )
    assert response.status_code == 200, response.text
    kinds = [e["kind"] for e in response.json()["ledger"]]
    assert kinds == ["owner_changed", "due_date_changed"]
    # The same PATCH again changes nothing and writes nothing.
    client.patch(f"/api/v1/actions/{action['id']}", json={"owner": "bob@example.com"}, headers=WRITE)
    entries = client.get("/api/v1/ledger", params={"action_id": action["id"]}, headers=READ).json()["items"]
    assert len(entries) == 2 and entries[0]["details"]["to"] == "bob@example.com"
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    verify = client.get("/api/v1/ledger/verify", headers=READ).json()
    assert verify == {"ok": True, "entries": 2, "head_hash": entries[1]["hash"]}
    assert client.get("/api/v1/ledger", params={"since_id": 1}, headers=READ).json()["items"][0]["id"] == 2


def test_unknown_ids_are_404(client: TestClient) -> None:
    for path in (
        "/api/v1/incidents/999",
        "/api/v1/postmortems/999",
        "/api/v1/actions/999",
        "/api/v1/postmortems/999/revisions",
        "/postmortems/999",
    ):
        response = client.get(path, headers=READ)
        assert response.status_code == 404, path
        assert "999" in response.json()["detail"]
    assert client.patch("/api/v1/findings/999", json={}, headers=WRITE).status_code == 404
    assert client.patch("/api/v1/actions/999", json={}, headers=WRITE).status_code == 404
    assert client.post("/api/v1/incidents/999/postmortem", headers=WRITE).status_code == 404
    assert (
        client.post(
            "/api/v1/postmortems/999/findings", json={"kind": "root_cause", "statement": "s"}, headers=WRITE
        ).status_code
        == 404
    )
    assert client.get("/api/v1/incidents/abc", headers=READ).status_code == 422
    assert client.get(f"/api/v1/incidents/{2**70}", headers=READ).status_code == 422


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert client.get("/metrics").status_code == 200


def test_a_new_due_date_moves_the_unfiled_action_in_the_filing_queue(client: TestClient, context: Context) -> None:
    from app.jobs import Job

    pm = make_postmortem(client, _incident(client)["id"])
    finding = add_finding(client, pm["id"])
    action = client.post(
        f"/api/v1/postmortems/{pm['id']}/actions",
        json={"title": "t", "due_date": "2031-01-01", "finding_ids": [finding["id"]]},
        headers=WRITE,
    ).json()
    client.patch(f"/api/v1/actions/{action['id']}", json={"due_date": "2030-02-03"}, headers=WRITE)
    with context.read() as session:
        job = session.exec(select(Job).where(Job.action_id == action["id"])).one()
    assert job.kind == "file_action" and job.sort_date == date(2030, 2, 3)
