"""Similar postmortems through GET /api/v1/{postmortems,incidents}/{id}/similar on both databases: a known corpus
ranked by the stated rule (same fingerprint, then same service and finding category, then similar text), only
earlier postmortems, each with its findings and its actions' status and verification."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from app.actions import Action
from app.context import Context
from app.vocabulary import ActionStatus
from tests.helpers import READ, WRITE, add_finding, make_postmortem, pd_event, post_pd

GATEWAY = "Payments gateway timeouts"


def _postmortem(
    client: TestClient, key: str, title: str, service: str, at: str, statement: str, category: str
) -> dict[str, Any]:
    body = pd_event("incident.triggered", event_id=f"EV-{key}", incident_id=key, title=title, service=service, at=at)
    assert post_pd(client, body).status_code == 202
    items = client.get("/api/v1/incidents", params={"limit": 500}, headers=READ).json()["items"]
    incident = next(i for i in items if i["external_id"] == key)
    pm = make_postmortem(client, incident["id"])
    finding = add_finding(client, pm["id"], statement=statement, category=category)
    return {"incident": incident, "postmortem": pm, "finding": finding}


def _similar(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(path, params=params, headers=READ)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_earlier_postmortems_rank_by_the_stated_rule(client: TestClient, context: Context) -> None:
    fingerprint = _postmortem(
        client, "QB", GATEWAY, "Checkout API", "2026-03-01T10:00:00Z", "Gateway pool too small", "capacity"
    )
    service = _postmortem(
        client,
        "QC",
        "Card tokenizer crashed",
        "Checkout API",
        "2026-03-02T10:00:00Z",
        "Tokenizer heap ran out",
        "capacity",
    )
    words = _postmortem(
        client, "QD", "Search gateway errors", "Search API", "2026-03-03T10:00:00Z",
        "Clients retried without backoff and overloaded the index", "dependency",
    )  # fmt: skip
    _postmortem(client, "QE", "Index corruption", "Search API", "2026-03-04T10:00:00Z", "Disk firmware bug", "hardware")
    ours = _postmortem(
        client,
        "QA",
        GATEWAY,
        "Checkout API",
        "2026-03-10T10:00:00Z",
        "Gateway client retried without backoff",
        "capacity",
    )
    later = _postmortem(client, "QF", GATEWAY, "Checkout API", "2026-03-20T10:00:00Z", "Pool again", "capacity")
    # What was tried last time: the same-fingerprint postmortem's action was done, and its fix held.
    body = {"title": "Size the gateway pool from load tests", "finding_ids": [fingerprint["finding"]["id"]]}
    tried = client.post(f"/api/v1/postmortems/{fingerprint['postmortem']['id']}/actions", json=body, headers=WRITE)
    with context.write() as session:
        action = session.get(Action, tried.json()["id"])
        assert action is not None
        action.status = ActionStatus.DONE
        session.add(action)
    note = {"result": "held", "note": "no pool waits for 30 days"}
    assert client.post(f"/api/v1/actions/{tried.json()['id']}/verification", json=note, headers=WRITE).is_success

    found = _similar(client, f"/api/v1/postmortems/{ours['postmortem']['id']}/similar")
    assert [(s["postmortem_id"], s["reason"]) for s in found] == [
        (fingerprint["postmortem"]["id"], "same_fingerprint"),
        (service["postmortem"]["id"], "same_service_and_category"),
        (words["postmortem"]["id"], "similar_text"),
    ]  # the unrelated one shares nothing; the later one with our fingerprint is not earlier
    scores = [s["score"] for s in found]
    assert 3 < scores[0] < 4 and 2 <= scores[1] < 3 and 1 < scores[2] < 2
    first = found[0]
    assert first["key"] == fingerprint["postmortem"]["key"] and first["title"] == GATEWAY
    assert [f["statement"] for f in first["findings"]] == ["Gateway pool too small"]
    assert [(a["title"], a["status"], a["verification"]["state"]) for a in first["actions"]] == [
        ("Size the gateway pool from load tests", "done", "held")
    ]
    assert _similar(client, f"/api/v1/postmortems/{ours['postmortem']['id']}/similar", limit=1) == found[:1]
    # "Seen before" on the postmortem page and in the engineering report: the same postmortems, in the same order.
    page = client.get(f"/postmortems/{ours['postmortem']['id']}", headers=READ).text
    seen = page[page.index('id="seen-before"') : page.index('id="findings"')]
    anchors = [f'id="seen-{s["postmortem_id"]}"' for s in found]
    assert all(a in seen for a in anchors) and [seen.index(a) for a in anchors] == sorted(
        seen.index(a) for a in anchors
    )
    assert "same fingerprint" in seen and "fix held" in seen and "Size the gateway pool from load tests" in seen
    report = client.get(
        f"/api/v1/postmortems/{ours['postmortem']['id']}/report", params={"audience": "engineering"}, headers=READ
    ).text
    section = report[report.index("## Seen before") :]
    assert f"**{fingerprint['postmortem']['key']}** · {GATEWAY} (same fingerprint, score" in section
    assert "Size the gateway pool from load tests (done, verification held)" in section
    assert section.index(fingerprint["postmortem"]["key"]) < section.index(service["postmortem"]["key"])
    # An incident with a postmortem answers its postmortem's; the first postmortem has nothing earlier.
    assert _similar(client, f"/api/v1/incidents/{ours['incident']['id']}/similar") == found
    assert _similar(client, f"/api/v1/postmortems/{fingerprint['postmortem']['id']}/similar") == []
    # An incident without a postmortem: every postmortem but its own is earlier; the same failure comes first.
    post_pd(
        client,
        pd_event("incident.triggered", event_id="EV-G", incident_id="QG", title=GATEWAY, at="2026-03-25T10:00:00Z"),
    )
    items = client.get("/api/v1/incidents", params={"limit": 500}, headers=READ).json()["items"]
    fresh = next(i for i in items if i["external_id"] == "QG")
    assert fresh["postmortem_id"] is None
    top = _similar(client, f"/api/v1/incidents/{fresh['id']}/similar")
    same = {fingerprint["postmortem"]["id"], ours["postmortem"]["id"], later["postmortem"]["id"]}
    assert {s["postmortem_id"] for s in top[:3]} == same and {s["reason"] for s in top[:3]} == {"same_fingerprint"}


def test_similar_answers_4xx_for_bad_requests(client: TestClient) -> None:
    ours = _postmortem(client, "QZ", GATEWAY, "Checkout API", "2026-03-10T10:00:00Z", "Pool", "capacity")
    pm, incident = ours["postmortem"]["id"], ours["incident"]["id"]
    assert client.get(f"/api/v1/postmortems/{pm}/similar").status_code == 401
    for path in ("/api/v1/postmortems/999999/similar", "/api/v1/incidents/999999/similar"):
        assert client.get(path, headers=READ).status_code == 404
    for path in (f"/api/v1/postmortems/{pm}/similar", f"/api/v1/incidents/{incident}/similar"):
        for params in ({"limit": 0}, {"limit": 51}, {"limit": "x"}):
            assert client.get(path, params=params, headers=READ).status_code == 422
    assert client.get("/api/v1/postmortems/0/similar", headers=READ).status_code == 422
