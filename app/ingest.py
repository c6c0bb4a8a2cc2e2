"""Inbound alert flow: store the raw event, then fold it into its incident and open a postmortem when a rule says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from app import inbox, postmortems, recurrence
from app.db import utcnow
from app.incidents import Incident, apply_event
from app.mappings import Mappings
from connectors.events import AlertEvent, PayloadError


@dataclass(frozen=True)
class IngestResult:
    status: str  # accepted | duplicate | ignored | rejected
    event_id: str
    detail: str | None = None
    http_status: int = 202
    incident_id: int | None = None


def ingest(
    session: Session, mappings: Mappings, source: str, body: bytes, parse: Callable[[bytes], AlertEvent]
) -> IngestResult:
    """Run in the caller's transaction; the caller answers only after it commits."""
    received_at = utcnow()
    try:
        event = parse(body)
    except PayloadError as exc:
        event_id = inbox.dead_letter_id(body)
        inbox.store(
            session,
            source=source,
            external_id=event_id,
            event_type=None,
            status="dead_letter",
            body=body,
            reason=str(exc),
            received_at=received_at,
        )
        return IngestResult("rejected", event_id, str(exc), 400 if not _is_json(body) else 422)
    status = "ignored" if event.ignored else "accepted"
    row_id = inbox.store(
        session,
        source=source,
        external_id=event.event_id,
        event_type=event.event_type,
        status=status,
        body=body,
        received_at=received_at,
    )
    if row_id is None:
        return IngestResult("duplicate", event.event_id)
    if event.ignored:
        return IngestResult("ignored", event.event_id)
    incident = apply_event(session, mappings, event, row_id, received_at)
    assert incident.id is not None
    recurrence.link_if_recurring(session, incident)
    open_postmortem_if_due(session, mappings, incident)
    return IngestResult("accepted", event.event_id, incident_id=incident.id)


def open_postmortem_if_due(session: Session, mappings: Mappings, incident: Incident) -> bool:
    if incident.postmortem_id is not None:
        return False
    rule = postmortems.matching_rule(mappings, incident, utcnow())
    if rule is None:
        return False
    postmortems.open_for_incident(
        session, incident, author="system", trigger=rule, review_due_days=mappings.triggers.review_due_days
    )
    return True


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
