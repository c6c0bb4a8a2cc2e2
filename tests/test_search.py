"""The knowledge base's search through GET /api/v1/search on both databases: a known corpus where the expected
document ranks first, prefixes, phrases, OR and exclusion, the index kept in step with edits, the type filter, cursor
pages, and any text a person can type answered 200 or 422, never 500 (fuzzed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import READ, WRITE, add_finding, make_postmortem, pd_event, post_pd

CORPUS = [
    # (incident key, title, summary, [(finding statement, evidence, whys)], [(action title, success metric)])
    (
        "QDISK",
        "Payments disk filled up",
        "The log volume of the payments hosts filled and writes failed.",
        [("Logs were never rotated on the payments hosts", "df showed 100% on /var/log", ["no logrotate config"])],
        [("Rotate logs daily with logrotate", "disk below 70% for 30 days")],
    ),
    (
        "QCERT",
        "Expired TLS certificate on the edge",
        "Browsers refused the edge certificate for two hours.",
        [("Nobody owned certificate renewal", "the renewal reminder went to a deleted mailbox", [])],
        [("Automate certificate renewal with ACME", "no certificate within 14 days of expiry")],
    ),
    (
        "QDNS",
        "DNS resolver timeouts",
        "Lookups timed out under load after a resolver upgrade.",
        [("Resolver cache was sized for the old traffic", "cache hit rate fell to 40%", ["capacity never reviewed"])],
        [("Alert on resolver latency", "page within 5 minutes of p99 over 200 ms")],
    ),
    (
        "QPOOL",
        "Connection pool exhausted in checkout",
        "Checkout requests queued behind a pool of 10 connections.",
        [("Pool size was never tuned", "pool wait time 8 s", ["defaults were kept", "nobody load tested"])],
        [("Load test checkout before each release", "p99 under 1 s at twice peak")],
    ),
]


def _build(client: TestClient) -> dict[str, dict[str, Any]]:
    made: dict[str, dict[str, Any]] = {}
    for key, title, summary, finding_rows, action_rows in CORPUS:
        post_pd(client, pd_event("incident.triggered", event_id=f"EV-{key}", incident_id=key, title=title))
        items = client.get("/api/v1/incidents", params={"limit": 500}, headers=READ).json()["items"]
        incident = next(i for i in items if i["external_id"] == key)
        pm = make_postmortem(client, incident["id"])
        assert client.patch(f"/api/v1/postmortems/{pm['id']}", json={"summary": summary}, headers=WRITE).is_success
        findings = [
            add_finding(client, pm["id"], statement=s, evidence=e, whys=w, category="capacity")
            for s, e, w in finding_rows
        ]
        actions = []
        for action_title, metric in action_rows:
            body = {"title": action_title, "success_metric": metric, "finding_ids": [findings[0]["id"]]}
            response = client.post(f"/api/v1/postmortems/{pm['id']}/actions", json=body, headers=WRITE)
            assert response.status_code == 201, response.text
            actions.append(response.json())
        made[key] = {"incident": incident, "postmortem": pm, "findings": findings, "actions": actions}
    return made


def _search(client: TestClient, q: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/search", params={"q": q, **params}, headers=READ)
    assert response.status_code == 200, (q, response.text)
    return list(response.json()["items"])


def _first(client: TestClient, q: str, **params: Any) -> tuple[str, int]:
    items = _search(client, q, **params)
    assert items, q
    return items[0]["type"], items[0]["id"]


def test_the_expected_document_ranks_first(client: TestClient) -> None:
    made = _build(client)
    disk, cert, pool = made["QDISK"], made["QCERT"], made["QPOOL"]
    assert _first(client, "logrotate") == ("action", disk["actions"][0]["id"])
    assert _first(client, "certificate renewal", type="action") == ("action", cert["actions"][0]["id"])
    assert _first(client, "certificate renewal", type="finding") == ("finding", cert["findings"][0]["id"])
    # A word in the title weighs more than the same word in the body.
    assert _first(client, "pool", type="postmortem") == ("postmortem", pool["postmortem"]["id"])
    # Prefixes: a word being typed finds the words it starts ("rotat" → rotated, rotate).
    found = {(i["type"], i["id"]) for i in _search(client, "rotat")}
    assert {("finding", disk["findings"][0]["id"]), ("action", disk["actions"][0]["id"])} <= found
    # Evidence and the five whys are searched: "nobody load tested" is a why of the pool finding.
    assert _first(client, "load tested nobody", type="finding") == ("finding", pool["findings"][0]["id"])
    assert _first(client, "deleted mailbox") == ("finding", cert["findings"][0]["id"])
    # Incident titles, each result with its postmortem and a highlighted, escaped snippet.
    hit = _search(client, "resolver timeouts", type="incident")[0]
    assert (hit["id"], hit["postmortem_id"]) == (made["QDNS"]["incident"]["id"], made["QDNS"]["postmortem"]["id"])
    assert "<mark>" in hit["snippet"] and hit["score"] > 0
    assert {i["type"] for i in _search(client, "certificate", type="postmortem")} == {"postmortem"}


def test_phrases_alternatives_and_exclusion(client: TestClient) -> None:
    made = _build(client)
    cert, dns = made["QCERT"]["postmortem"]["id"], made["QDNS"]["postmortem"]["id"]
    either = {i["postmortem_id"] for i in _search(client, "certificate OR resolver", type="postmortem")}
    assert either == {cert, dns}
    assert {i["postmortem_id"] for i in _search(client, "certificate resolver")} == set()  # both words: none
    assert _search(client, '"renewal with ACME"', type="action")[0]["id"] == made["QCERT"]["actions"][0]["id"]
    assert _search(client, '"ACME with renewal"') == []  # a phrase keeps its order
    without = {i["postmortem_id"] for i in _search(client, "checkout -pool", type="postmortem")}
    assert made["QPOOL"]["postmortem"]["id"] not in without


def test_the_index_follows_edits_and_timeline_notes(client: TestClient) -> None:
    made = _build(client)
    finding = made["QDISK"]["findings"][0]
    assert client.patch(
        f"/api/v1/findings/{finding['id']}", json={"statement": "Retention was unbounded"}, headers=WRITE
    ).is_success
    assert finding["id"] not in [i["id"] for i in _search(client, "never rotated", type="finding")]
    assert _first(client, "retention unbounded") == ("finding", finding["id"])
    note = {
        "event": {
            "id": "EV-NOTE",
            "event_type": "incident.annotated",
            "resource_type": "incident",
            "occurred_at": "2026-03-14T09:30:00.000Z",
            "agent": {"id": "PU1", "type": "user_reference", "summary": "Alice"},
            "client": None,
            "data": {
                "incident": {"id": "QDNS", "type": "incident_reference", "summary": "DNS resolver timeouts"},
                "id": "PNOTE1",
                "content": "Flushed the negative cache on every resolver",
                "trimmed": False,
                "type": "incident_note",
            },
        }
    }
    assert post_pd(client, json.dumps(note).encode()).status_code == 202
    assert _first(client, "negative cache flushed") == ("incident", made["QDNS"]["incident"]["id"])


def test_cursor_pages_are_disjoint_and_complete(client: TestClient) -> None:
    _build(client)
    everything = _search(client, "the", limit=100) + _search(client, "a OR of OR on OR in", limit=100)
    assert everything == [] or everything  # stop words may match nothing; the pages below need a common word
    query = "checkout OR payments OR certificate OR resolver OR pool OR logs"
    whole = [(i["type"], i["id"]) for i in _search(client, query, limit=100)]
    assert len(whole) >= 8
    seen: list[tuple[str, int]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"q": query, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/search", params=params, headers=READ).json()
        seen += [(i["type"], i["id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole
    for bad in ("abc", "-1", "9" * 20):
        assert client.get("/api/v1/search", params={"q": "pool", "cursor": bad}, headers=READ).status_code == 422


@pytest.mark.parametrize(
    "q",
    [
        '"unclosed phrase',
        "AND",
        "OR",
        "OR OR",
        "NOT pool",
        "pool AND OR NOT",
        "pool*",
        "(pool",
        "pool)",
        "pool\x00exhausted",
        "NEAR(pool checkout, 3)",
        "title:pool",
        "-pool checkout",
        "^pool",
        "pool:*",
        "'pool' & !'checkout' | <->",
        "日本語 のテスト",
        "ñandú café",
        "x" * 500,
        " ".join(["pool"] * 32),
    ],
)
def test_odd_queries_are_searched_as_words(client: TestClient, q: str) -> None:
    response = client.get("/api/v1/search", params={"q": q}, headers=READ)
    assert response.status_code == 200, (q, response.text)


@pytest.mark.parametrize(
    "q", ["", "   ", '"', '""', "*", "((()))", "-pool", "!!!", "\x00", "x" * 501, " ".join(["pool"] * 33)]
)
def test_queries_with_nothing_to_search_are_refused(client: TestClient, q: str) -> None:
    response = client.get("/api/v1/search", params={"q": q}, headers=READ)
    assert response.status_code == 422 and response.json()["detail"], (q, response.text)


def test_search_needs_a_token_and_valid_parameters(client: TestClient) -> None:
    assert client.get("/api/v1/search", params={"q": "pool"}).status_code == 401
    assert client.get("/api/v1/search", headers=READ).status_code == 422  # q is required
    for params in ({"type": "ledger"}, {"limit": 0}, {"limit": 501}):
        assert client.get("/api/v1/search", params={"q": "pool", **params}, headers=READ).status_code == 422


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.text(alphabet="\"*()-:^!&|<>' ORANDNOT\x00ab", max_size=40)
)
def test_fuzzed_queries_never_fail(client: TestClient, q: str) -> None:
    response = client.get("/api/v1/search", params={"q": q}, headers=READ)
    assert response.status_code in (200, 422), (q, response.text)


def test_snippets_are_escaped_html_around_the_match(client: TestClient) -> None:
    made = _build(client)
    finding = made["QPOOL"]["findings"][0]
    evidence = "<script>alert(1)</script> & the pool waited " + "filler " * 60 + "tail"
    assert client.patch(f"/api/v1/findings/{finding['id']}", json={"evidence": evidence}, headers=WRITE).is_success
    hit = _search(client, "waited", type="finding")[0]
    assert hit["id"] == finding["id"]
    text = hit["snippet"]
    assert "<script>" not in text and "</script>" not in text and "&lt;/script&gt;" in text and "&amp;" in text
    assert "<mark>waited</mark>" in text and text.endswith("…") and "tail" not in text
