"""Inbound alert flow: store the raw event, then fold it into its incident and open a postmortem when a rule says so."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import Session

from app import inbox, postmortems, recurrence, tracking
from app.db import utcnow
from app.incidents import Incident, apply_event
from app.mappings import Mappings
from connectors.events import AlertEvent, PayloadError
from connectors.tracker_webhooks import TrackerEvent


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
        return _dead_letter(session, source, body, exc)
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


def _dead_letter(session: Session, source: str, body: bytes, error: PayloadError) -> IngestResult:
    """Keep an authenticated but unusable body, so nothing a source sent is lost; 400 if not JSON, else 422."""
    event_id = inbox.dead_letter_id(body)
    inbox.store(
        session,
        source=source,
        external_id=event_id,
        event_type=None,
        status="dead_letter",
        body=body,
        reason=str(error),
    )
    return IngestResult("rejected", event_id, str(error), 400 if not _is_json(body) else 422)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def receive_tracker_event(
    session: Session,
    mappings: Mappings,
    source: str,
    body: bytes,
    delivery_id: str | None,
    parse: Callable[[bytes], TrackerEvent | None],
) -> IngestResult:
    """Store a tracker webhook delivery (deduplicated by its delivery id) and apply the status it carries."""
    event_id = delivery_id or "sha256:" + hashlib.sha256(body).hexdigest()
    try:
        event = parse(body)
    except PayloadError as exc:
        return _dead_letter(session, source, body, exc)
    status = "ignored" if event is None else "accepted"
    if inbox.store(session, source=source, external_id=event_id, event_type=source, status=status, body=body) is None:
        return IngestResult("duplicate", event_id)
    if event is None:
        return IngestResult("ignored", event_id)
    tracking.apply_tracker_event(session, mappings, event)
    return IngestResult("accepted", event_id)
