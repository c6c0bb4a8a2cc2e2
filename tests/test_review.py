"""The review around a postmortem through its routes: participants, the minimum viable report and the publish gate,
accepted risks, preventive controls, and the checklist on the page and in the report."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.actions import Action
from app.context import Context
from app.postmortems import Postmortem
from tests.helpers import READ, WRITE, add_finding, complete_review, make_postmortem, pd_event, post_pd

FULL = [
    {"who": "dana@example.com", "role": "facilitator", "function": "operations"},
    {"who": "erin@example.com", "role": "reviewer", "function": "support"},
    {"who": "alice@example.com", "role": "author", "function": "engineering"},
]


def _postmortem(client: TestClient, key: str = "QR1") -> dict[str, Any]:
    post_pd(client, pd_event("incident.triggered", event_id=f"E-{key}", incident_id=key, urgency="low"))
    items = client.get("/api/v1/incidents", headers=READ).json()["items"]
    return make_postmortem(client, next(i for i in items if i["external_id"] == key)["id"])


def _patch(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    return client.patch(path, json=body, headers=WRITE)


def _missing(client: TestClient, pm_id: int) -> list[tuple[str, int | None]]:
    response = client.get(f"/api/v1/postmortems/{pm_id}/completeness", headers=READ)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["complete"] is (body["missing"] == [])
    assert all(m["detail"] for m in body["missing"])
    return [(m["code"], m.get("finding_id") or m.get("action_id")) for m in body["missing"]]


def _action(client: TestClient, pm_id: int, finding_id: int, **fields: Any) -> dict[str, Any]:
    body = {"title": "Alert on pool saturation", "finding_ids": [finding_id], **fields}
    response = client.post(f"/api/v1/postmortems/{pm_id}/actions", json=body, headers=WRITE)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_participants_are_replaced_versioned_and_validated(client: TestClient) -> None:
    pm = _postmortem(client)
    assert pm["participants"] == []
    url = f"/api/v1/postmortems/{pm['id']}"
    first = _patch(client, url, {"participants": FULL})
    assert first.status_code == 200, first.text
    assert first.json()["participants"] == FULL and first.json()["version"] == 2
    # A PATCH replaces the whole list; `function` is optional.
    second = _patch(client, url, {"participants": [{"who": " dana@example.com ", "role": "reviewer"}]})
    assert second.json()["participants"] == [{"who": "dana@example.com", "role": "reviewer", "function": None}]
    assert (
        _patch(client, url, {"participants": [{"who": "dana@example.com", "role": "reviewer"}]}).json()["version"] == 3
    )  # the same list again is no change
    revisions = client.get(f"{url}/revisions", headers=READ).json()["items"]
    assert [r["version"] for r in revisions] == [1, 2, 3]
    assert revisions[1]["changes"]["participants"] == {"from": [], "to": FULL}
    assert revisions[2]["changes"]["participants"]["to"] == [
        {"who": "dana@example.com", "role": "reviewer", "function": None}
    ]

    unknown = _patch(client, url, {"participants": [{"who": "x@example.com", "role": "facilitatr"}]})
    assert unknown.status_code == 422 and "facilitatr" in unknown.text and "facilitator" in unknown.text
    two = [{"who": "a@example.com", "role": "facilitator"}, {"who": "b@example.com", "role": "facilitator"}]
    both = _patch(client, url, {"participants": two})
    assert both.status_code == 422 and "one facilitator at most" in both.text
    twice = _patch(client, url, {"participants": [{"who": "a@example.com", "role": "reviewer"}] * 2})
    assert twice.status_code == 422 and "twice" in twice.text
    for bad in (
        None,
        [{"who": "", "role": "reviewer"}],
        [{"who": "   ", "role": "reviewer"}],
        [{"who": "a@example.com"}],
        [{"who": "a@example.com", "role": "reviewer", "extra": 1}],
        [{"who": "a" * 256, "role": "reviewer"}],
        [{"who": "a@example.com", "role": "reviewer", "function": "x" * 65}],
        [{"who": f"p{n}@example.com", "role": "stakeholder"} for n in range(101)],
        "dana",
    ):
        response = _patch(client, url, {"participants": bad})
        assert response.status_code == 422, (bad, response.text)
    assert client.get(url, headers=READ).json()["version"] == 3  # nothing refused was stored


def test_completeness_is_computed_from_the_data_and_shrinks(client: TestClient) -> None:
    pm = _postmortem(client)
    pm_id, url = pm["id"], f"/api/v1/postmortems/{pm['id']}"
    assert _missing(client, pm_id) == [
        ("summary", None),
        ("impact", None),
        ("facilitator", None),
        ("reviewer", None),
        ("cause", None),
    ]
    gap = add_finding(client, pm_id, kind="detection_gap", statement="No alert on the pool")
    assert ("finding_unanswered", gap["id"]) in _missing(client, pm_id)
    _patch(client, url, {"summary": "  "})
    assert _missing(client, pm_id)[0] == ("summary", None)  # blank is no summary
    _patch(client, url, {"summary": "Checkout failed for 20 minutes.", "customer_impact": "Payments timed out."})
    impact = client.get(f"{url}/completeness", headers=READ).json()["missing"][0]
    assert impact["code"] == "impact" and "impact_start" in impact["detail"]
    _patch(client, url, {"impact_start": "2026-03-14T09:00:00Z", "participants": FULL[:1]})
    assert [code for code, _ in _missing(client, pm_id)] == ["reviewer", "cause", "finding_unanswered"]
    _patch(client, url, {"participants": FULL})
    cause = add_finding(client, pm_id, kind="contributing_factor", statement="Retries doubled the load")
    action = _action(client, pm_id, gap["id"])  # no owner, due date or success metric
    assert _missing(client, pm_id) == [("finding_unanswered", cause["id"]), ("action_incomplete", action["id"])]
    detail = client.get(f"{url}/completeness", headers=READ).json()["missing"][1]["detail"]
    assert "an owner" in detail and "a due date" in detail and "a success metric" in detail
    fields = {"owner": "bob@example.com", "due_date": "2030-01-01", "success_metric": "page before p99 > 1s"}
    _patch(client, f"/api/v1/actions/{action['id']}", fields)
    # The risk of the contributing factor is accepted instead: that answers it.
    why = {"accepted_risk": "Retries are capped at 2 since March; accepted by Dana (SRE lead)"}
    accepted = _patch(client, f"/api/v1/findings/{cause['id']}", why)
    assert accepted.status_code == 200 and accepted.json()["accepted_risk"] == why["accepted_risk"]
    assert _missing(client, pm_id) == []
    # Clearing it makes the finding unanswered again; each change is a revision.
    assert _patch(client, f"/api/v1/findings/{cause['id']}", {"accepted_risk": None}).json()["accepted_risk"] is None
    assert _missing(client, pm_id) == [("finding_unanswered", cause["id"])]
    changes = [r["changes"] for r in client.get(f"{url}/revisions", headers=READ).json()["items"]]
    risk = [c["finding_changed"]["accepted_risk"] for c in changes if "accepted_risk" in c.get("finding_changed", {})]
    assert risk == [{"from": None, "to": why["accepted_risk"]}, {"from": why["accepted_risk"], "to": None}]
    for bad in ({"accepted_risk": ""}, {"accepted_risk": "  "}, {"accepted_risk": "x" * 20_001}, {"accepted_risk": 3}):
        assert _patch(client, f"/api/v1/findings/{cause['id']}", bad).status_code == 422, bad


def test_publishing_is_refused_with_the_full_missing_list_until_complete(client: TestClient, context: Context) -> None:
    pm = _postmortem(client)
    url = f"/api/v1/postmortems/{pm['id']}"
    assert _patch(client, url, {"status": "in_review"}).status_code == 200
    refused = _patch(client, url, {"status": "published"})
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert "cannot be published" in body["detail"]
    assert [m["code"] for m in body["missing"]] == ["summary", "impact", "facilitator", "reviewer", "cause"]
    assert body["missing"] == client.get(f"{url}/completeness", headers=READ).json()["missing"]
    # Checked as the edit leaves it: the summary in the same PATCH counts, and is rolled back with the refusal.
    refused = _patch(client, url, {"status": "published", "summary": "What happened."})
    assert [m["code"] for m in refused.json()["missing"]] == ["impact", "facilitator", "reviewer", "cause"]
    after = client.get(url, headers=READ).json()
    assert (after["status"], after["summary"], after["version"]) == ("in_review", None, 2)  # all of it rolled back
    # One PATCH may bring the last missing pieces and publish.
    complete_review(client, pm["id"])
    published = _patch(client, url, {"status": "published", "summary": "What happened."})
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published" and published.json()["published_at"]


def test_a_postmortem_published_before_the_gate_keeps_its_status(client: TestClient, context: Context) -> None:
    pm = _postmortem(client)
    with context.write() as session:  # as the migration leaves a postmortem published before this change
        row = session.get(Postmortem, pm["id"])
        assert row is not None
        row.status = "published"  # type: ignore[assignment]
        session.add(row)
    url = f"/api/v1/postmortems/{pm['id']}"
    edited = _patch(client, url, {"summary": "Written up after the fact."})
    assert edited.status_code == 200 and edited.json()["status"] == "published"
    assert not client.get(f"{url}/completeness", headers=READ).json()["complete"]
    assert _patch(client, url, {"status": "closed"}).json()["status"] == "closed"


def test_control_and_counterfactual_are_validated_and_stored(client: TestClient) -> None:
    pm = _postmortem(client)
    finding = add_finding(client, pm["id"])
    what_if = "The saturation alert would have paged 8 minutes before customers noticed."
    action = _action(client, pm["id"], finding["id"], control="alerting", counterfactual=what_if)
    assert (action["control"], action["counterfactual"]) == ("alerting", what_if)
    url = f"/api/v1/actions/{action['id']}"
    assert _patch(client, url, {"control": "feature_flag"}).json()["control"] == "feature_flag"
    assert _patch(client, url, {"control": None, "counterfactual": None}).json()["control"] is None
    for bad in ({"control": "prayer"}, {"control": 1}, {"counterfactual": " "}, {"counterfactual": "x" * 20_001}):
        assert _patch(client, url, bad).status_code == 422, bad
        post = {"title": "t", "finding_ids": [finding["id"]], **bad}
        assert client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=post, headers=WRITE).status_code == 422
    listed = client.get("/api/v1/actions", params={"postmortem_id": pm["id"]}, headers=READ).json()["items"]
    assert [a["control"] for a in listed] == [None]


def test_a_wont_do_action_needs_its_reason(client: TestClient, context: Context) -> None:
    pm = _postmortem(client)
    finding = add_finding(client, pm["id"])
    action = _action(client, pm["id"], finding["id"])
    with context.write() as session:  # closed as won't do in its tracker, which gave no reason
        row = session.get(Action, action["id"])
        assert row is not None
        row.status, row.tracker_key = "wont_do", "OPS-9"  # type: ignore[assignment]
        session.add(row)
    codes = _missing(client, pm["id"])
    assert ("wont_do_unexplained", action["id"]) in codes and ("action_incomplete", action["id"]) not in codes
    reason = {"wont_do_reason": "The service is retired in May; not worth it (Bob)"}
    assert _patch(client, f"/api/v1/actions/{action['id']}", reason).status_code == 200
    assert ("wont_do_unexplained", action["id"]) not in _missing(client, pm["id"])


def test_the_page_and_the_report_show_the_checklist(client: TestClient) -> None:
    pm = _postmortem(client)
    finding = add_finding(client, pm["id"], kind="detection_gap", statement="No alert on the pool")
    page = client.get(f"/postmortems/{pm['id']}", headers=READ).text
    assert 'id="checklist"' in page and 'href="#summary"' in page and 'href="#participants"' in page
    assert f'<a href="#finding-{finding["id"]}">Finding {finding["id"]} (detection gap)' in page
    for anchor in ("summary", "impact", "participants", "findings", f"finding-{finding['id']}"):
        assert f'id="{anchor}"' in page, anchor
    report = client.get(f"/api/v1/postmortems/{pm['id']}/report", params={"audience": "engineering"}, headers=READ)
    assert "**Minimum viable report:** 6 item(s) missing" in report.text
    accepted = {"accepted_risk": "Covered by the dashboard review; accepted by Dana"}
    _patch(client, f"/api/v1/findings/{finding['id']}", accepted)
    complete_review(client, pm["id"])
    page = client.get(f"/postmortems/{pm['id']}", headers=READ).text
    assert "Complete: the minimum viable report holds everything it needs." in page and 'class="checklist"' not in page
    assert "dana@example.com" in page and "Risk accepted:" in page and "Covered by the dashboard review" in page
    report = client.get(f"/api/v1/postmortems/{pm['id']}/report", params={"audience": "engineering"}, headers=READ)
    assert "**Minimum viable report:** complete." in report.text and "| dana@example.com | facilitator |" in report.text


@pytest.mark.parametrize("path", ["/api/v1/postmortems/999/completeness", "/api/v1/postmortems/0/completeness"])
def test_completeness_of_an_unknown_postmortem(client: TestClient, path: str) -> None:
    response = client.get(path, headers=READ)
    assert response.status_code in (404, 422) and response.json()["detail"]
    assert client.get(path).status_code == 401


def test_the_openapi_document_describes_the_review(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    completeness = doc["paths"]["/api/v1/postmortems/{postmortem_id}/completeness"]["get"]
    assert completeness["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("CompletenessOut")
    assert schemas["MissingCode"]["enum"] == [
        "summary",
        "impact",
        "facilitator",
        "reviewer",
        "cause",
        "finding_unanswered",
        "action_incomplete",
        "wont_do_unexplained",
    ]
    assert schemas["ParticipantRole"]["enum"] == ["facilitator", "author", "reviewer", "stakeholder"]
    assert len(schemas["Control"]["enum"]) == 10
    patch = doc["paths"]["/api/v1/postmortems/{postmortem_id}"]["patch"]
    assert patch["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith("ConflictOut")
    assert "participants" in schemas["PostmortemPatch"]["properties"]
    assert "participants" in schemas["PostmortemOut"]["required"]
    assert {"accepted_risk"} <= set(schemas["FindingPatch"]["properties"]) & set(schemas["FindingOut"]["properties"])
    assert {"control", "counterfactual", "escalation_level"} <= set(schemas["ActionOut"]["properties"])
    listed = doc["paths"]["/api/v1/actions"]["get"]["parameters"]
    assert "escalated" in [p["name"] for p in listed]
