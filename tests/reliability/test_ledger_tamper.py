"""Ledger tampering straight in the database (a row changed, a row re-hashed, a row deleted) shows in /verify."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, update

from app.context import Context
from app.ledger import LedgerEntry, entry_hash
from tests.helpers import READ, WRITE, add_finding, first_incident, make_postmortem, pd_event, post_pd


def _ledger_with_entries(client: TestClient) -> list[dict[str, Any]]:
    """Five entries written the ordinary way: through the API (owner changed three times, due date twice)."""
    post_pd(client, pd_event("incident.triggered", event_id="EV-LEDGER", incident_id="LEDGER1"))
    postmortem = make_postmortem(client, first_incident(client)["id"])
    finding = add_finding(client, postmortem["id"])
    body = {"title": "Add a canary", "owner": "alice@example.com", "finding_ids": [finding["id"]]}
    action = client.post(f"/api/v1/postmortems/{postmortem['id']}/actions", json=body, headers=WRITE).json()
    for change in (
        {"owner": "bob@example.com"},
        {"due_date": "2030-02-01"},
        {"owner": "carol@example.com"},
        {"due_date": "2030-03-01"},
        {"owner": "alice@example.com"},
    ):
        response = client.patch(f"/api/v1/actions/{action['id']}", json=change, headers=WRITE)
        assert response.status_code == 200, response.text
    entries = client.get("/api/v1/ledger", headers=READ).json()["items"]
    assert [e["kind"] for e in entries] == [
        "owner_changed",
        "due_date_changed",
        "owner_changed",
        "due_date_changed",
        "owner_changed",
    ]
    return list(entries)


def _verify(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/ledger/verify", headers=READ)
    assert response.status_code == 200
    return dict(response.json())


def test_changed_rehashed_and_deleted_rows_are_detected(client: TestClient, context: Context) -> None:
    entries = _ledger_with_entries(client)
    assert _verify(client) == {"ok": True, "entries": 5, "head_hash": entries[-1]["hash"]}
    second, third = entries[1]["id"], entries[2]["id"]

    # A changed row: its own hash no longer matches.
    with context.write() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.id == second).values(details={"to": "2030-12-31"}))  # type: ignore[arg-type]
    assert _verify(client) == {"ok": False, "entries": 1, "first_bad_id": second, "head_hash": entries[0]["hash"]}

    # Changed back exactly: the chain holds again (the hash covers content, nothing else).
    with context.write() as session:
        session.execute(update(LedgerEntry).where(LedgerEntry.id == second).values(details=entries[1]["details"]))  # type: ignore[arg-type]
    assert _verify(client)["ok"] is True

    # A changed status with its hash recomputed to match: the next row's prev_hash gives it away.
    with context.write() as session:
        row = session.get(LedgerEntry, second)
        assert row is not None
        row.from_status = "done"
        row.hash = entry_hash(row)
        session.add(row)
    assert _verify(client) == {"ok": False, "entries": 2, "first_bad_id": third, "head_hash": row.hash}
    with context.write() as session:
        row = session.get(LedgerEntry, second)
        assert row is not None
        row.from_status = entries[1]["from_status"]
        row.hash = entry_hash(row)
        session.add(row)
    assert _verify(client)["ok"] is True

    # A deleted row: the ids have a gap and the next row's prev_hash points at nothing.
    with context.write() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.id == second))  # type: ignore[arg-type]
    assert _verify(client) == {"ok": False, "entries": 1, "first_bad_id": third, "head_hash": entries[0]["hash"]}


def test_entries_cut_off_the_end_show_as_a_different_head(client: TestClient, context: Context) -> None:
    entries = _ledger_with_entries(client)
    kept_head = _verify(client)["head_hash"]
    with context.write() as session:
        session.execute(delete(LedgerEntry).where(LedgerEntry.id == entries[-1]["id"]))  # type: ignore[arg-type]
    after = _verify(client)
    # The shorter chain is valid in itself; the head a monitor kept is what tells.
    assert after["ok"] is True and after["entries"] == len(entries) - 1 and after["head_hash"] != kept_head
