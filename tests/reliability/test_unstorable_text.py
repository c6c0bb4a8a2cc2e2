"""Signed webhooks whose text no database column can hold (NUL, lone surrogates) are stored, never a 5xx.

PostgreSQL refuses NUL in text and neither database takes an unpaired surrogate, yet JSON can spell both. One such
event is stored (made storable) and answered like any other; the events committed in the same batch are unharmed.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.context import Context
from app.inbox import Delivery, DeliveryStatus, store_many
from tests.helpers import pd_event, pd_signature

AWKWARD_IDS = ["EV-NUL\\u0000", "EV-SURROGATE\\ud800", "EV-BOTH\\u0000\\udfff"]


def _signed(client: TestClient, body: bytes) -> tuple[int, str]:
    headers = {"X-PagerDuty-Signature": pd_signature(body), "Content-Type": "application/json"}
    response = client.post("/webhooks/pagerduty", content=body, headers=headers)
    return response.status_code, response.text


def _escaped(event_id: str, **fields: str) -> bytes:
    # pd_event JSON-encodes the id, doubling the backslash; undo that so the body carries the JSON escape itself.
    return pd_event("incident.triggered", event_id=event_id, **fields).replace(b"\\\\u", b"\\u")


def test_nul_and_surrogates_in_ids_and_titles_are_stored_and_answered(client: TestClient, context: Context) -> None:
    for event_id in AWKWARD_IDS:
        assert _signed(client, _escaped(event_id))[0] == 202
        status, answer = _signed(client, _escaped(event_id))
        assert status == 202 and '"duplicate"' in answer
    assert _signed(client, _escaped("EV-TITLE", title="bad \\u0000 \\ud800 title"))[0] == 202
    raw_nul = b'{"event": {"id": "EV-RAW\x00", "event_type": "incident.triggered"}}'  # not JSON at all
    assert _signed(client, raw_nul)[0] == 400
    with context.read() as session:
        stored = session.execute(text("SELECT count(*) FROM inbound_event")).scalar()
    assert stored == len(AWKWARD_IDS) + 2


def test_one_unstorable_event_does_not_fail_its_batch(context: Context) -> None:
    good = Delivery("pagerduty", "EV-GOOD", "incident.triggered", DeliveryStatus.ACCEPTED, b"{}", pending=True)
    bad = Delivery(
        "pagerduty", "EV-BAD\x00\ud800", "incident\x00", DeliveryStatus.ACCEPTED, b"{\x00}", reason="x\ud800"
    )
    with context.write() as session:
        assert store_many(session, [good, bad]) == [True, True]
    with context.write() as session:
        assert store_many(session, [bad, good]) == [False, False]
