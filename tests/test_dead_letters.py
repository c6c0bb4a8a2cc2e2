"""Nothing lost, and visible: GET /api/v1/dead-letters lists what could not be used; `aftermath replay-dead-letters`
parses it again after a fix (idempotently), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select

from app.inbox import DeliveryStatus, InboundEvent
from tests.helpers import READ, apply_inbox, pd_event, pd_signature, post_pd

ROOT = Path(__file__).resolve().parent.parent
OG_CREATE = (Path(__file__).resolve().parent / "payloads" / "tags" / "og2_01_create.json").read_bytes()


def _post_raw_pd(client: TestClient, body: bytes) -> int:
    headers = {"X-PagerDuty-Signature": pd_signature(body), "Content-Type": "application/json"}
    return client.post("/webhooks/pagerduty", content=body, headers=headers).status_code


def _store(client: TestClient, **row: object) -> int:
    """A row as an earlier version left it (its parser refused the body, or applying it raised): processed."""
    context = client.app.state.context  # type: ignore[attr-defined]
    at = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    with context.write() as session:
        event = InboundEvent(received_at=at, processed_at=at, **row)  # type: ignore[arg-type]
        session.add(event)
        session.flush()
        assert event.id is not None
        return event.id


def _replay(client: TestClient, *args: str) -> list[list[str]]:
    url = client.app.state.context.settings.database_url  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERMATH_")}
    env.update({"AFTERMATH_DATABASE_URL": url, "PYTHONPATH": str(ROOT)})
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay-dead-letters", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]


def test_dead_letters_are_listed_with_reason_source_time_and_body(client: TestClient) -> None:
    assert _post_raw_pd(client, b'{"event": {"id": "E1"}}') == 422
    assert _post_raw_pd(client, b"not json at all") == 400
    failed = _store(
        client,
        source="opsgenie",
        external_id="x:1",
        event_type="Create",
        status=DeliveryStatus.FAILED,
        reason="KeyError: 'boom'",
        body=OG_CREATE.decode(),
    )
    page = client.get("/api/v1/dead-letters", headers=READ)
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [(i["source"], i["status"]) for i in items] == [
        ("pagerduty", "dead_letter"),
        ("pagerduty", "dead_letter"),
        ("opsgenie", "failed"),
    ]
    assert items[0]["reason"] == "event.event_type is missing" and items[0]["body"] == '{"event": {"id": "E1"}}'
    assert items[1]["body"] == "not json at all" and items[1]["reason"].startswith("body is not JSON")
    assert items[0]["received_at"].endswith("Z") and items[2]["id"] == failed
    first = client.get("/api/v1/dead-letters", params={"limit": 2}, headers=READ).json()
    rest = client.get("/api/v1/dead-letters", params={"cursor": first["next_cursor"]}, headers=READ).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in items] and not rest["next_cursor"]
    only = client.get("/api/v1/dead-letters", params={"status": "failed", "source": "opsgenie"}, headers=READ)
    assert [i["id"] for i in only.json()["items"]] == [failed]
    assert client.get("/api/v1/dead-letters", params={"status": "accepted"}, headers=READ).status_code == 422
    assert client.get("/api/v1/dead-letters", params={"limit": 101}, headers=READ).status_code == 422
    # Accepted and ignored events are not dead letters.
    assert post_pd(client, pd_event("incident.triggered", event_id="OK1")).status_code == 202
    assert len(client.get("/api/v1/dead-letters", headers=READ).json()["items"]) == 3


def test_replay_turns_what_parses_now_into_events_once(client: TestClient) -> None:
    fixed = pd_event("incident.triggered", event_id="E-FIXED", incident_id="QFIXED")
    parses_now = _store(
        client,
        source="pagerduty",
        external_id="dead:fixed",
        status=DeliveryStatus.DEAD_LETTER,
        reason="an old parser refused it",
        body=fixed.decode(),
    )
    assert post_pd(client, pd_event("incident.triggered", event_id="E-TWICE", incident_id="QTWICE")).status_code == 202
    twice = pd_event("incident.triggered", event_id="E-TWICE", incident_id="QTWICE", title="redelivered")
    duplicate = _store(
        client,
        source="pagerduty",
        external_id="dead:twice",
        status=DeliveryStatus.DEAD_LETTER,
        reason="an old parser refused it",
        body=twice.decode(),
    )
    assert _post_raw_pd(client, b'{"event": {"id": "E-JUNK"}}') == 422
    failed = _store(
        client,
        source="opsgenie",
        external_id="og:failed",
        event_type="Create",
        status=DeliveryStatus.FAILED,
        reason="RuntimeError: a bug since fixed",
        body=OG_CREATE.decode(),
    )

    assert _replay(client, "--id", str(parses_now)) == [
        [str(parses_now), "pagerduty", "pending", "now event E-FIXED (incident.triggered)"]
    ]
    outcomes = {int(row[0]): row[2] for row in _replay(client)}
    junk = next(i for i in outcomes if i not in (parses_now, duplicate, failed))
    assert outcomes == {duplicate: "duplicate", junk: "still_dead", failed: "pending"}
    apply_inbox(client)
    external = {i["external_id"]: i for i in client.get("/api/v1/incidents", headers=READ).json()["items"]}
    assert {"QFIXED", "QTWICE", json.loads(OG_CREATE)["alert"]["alertId"]} <= set(external)
    assert external["QTWICE"]["title"] == "Checkout API down"  # the duplicate changed nothing

    # Idempotent: what was replayed is no dead letter any more; only the junk is left, and stays.
    assert [(int(row[0]), row[2]) for row in _replay(client)] == [(junk, "still_dead")]
    assert [i["id"] for i in client.get("/api/v1/dead-letters", headers=READ).json()["items"]] == [junk]
    context = client.app.state.context  # type: ignore[attr-defined]
    with context.read() as session:
        rows = {r.id: r for r in session.exec(select(InboundEvent)).all()}
    assert rows[parses_now].external_id == "E-FIXED" and rows[parses_now].processed_at is not None
    assert rows[duplicate].status == DeliveryStatus.IGNORED and "stored already" in (rows[duplicate].reason or "")
