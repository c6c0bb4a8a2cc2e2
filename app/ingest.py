"""Inbound flows: classify and store raw deliveries; later, fold stored alert events into incidents."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app import inbox, postmortems, recurrence, tracking
from app.db import utcnow
from app.inbox import ACCEPTED, DEAD_LETTER, IGNORED, Delivery
from app.incidents import Incident, apply_event
from app.mappings import Mappings
from connectors import opsgenie, pagerduty
from connectors.events import AlertEvent, PayloadError
from connectors.tracker_webhooks import TrackerEvent

log = logging.getLogger(__name__)
PARSERS: dict[str, Callable[[bytes], AlertEvent]] = {"pagerduty": pagerduty.parse, "opsgenie": opsgenie.parse}


@dataclass(frozen=True)
class Answer:
    """What the webhook route answers once the delivery is stored."""

    status: str  # accepted | duplicate | ignored | rejected
    event_id: str
    detail: str | None = None
    http_status: int = 202


def classify_alert(source: str, body: bytes) -> Delivery:
    """Parse just enough to know the event's id and whether Aftermath uses it; no database work."""
    try:
        event = PARSERS[source](body)
    except PayloadError as exc:
        return _dead_letter(source, body, exc)
    if event.ignored:
        return Delivery(source, event.event_id, event.event_type, IGNORED, body)
    return Delivery(source, event.event_id, event.event_type, ACCEPTED, body, pending=True)


def _dead_letter(source: str, body: bytes, error: PayloadError) -> Delivery:
    # Kept with its reason, so nothing an authenticated source sent is lost.
    return Delivery(source, inbox.dead_letter_id(body), None, DEAD_LETTER, body, reason=str(error))


def answer(delivery: Delivery, stored: bool) -> Answer:
    if delivery.status == DEAD_LETTER:
        return Answer("rejected", delivery.external_id, delivery.reason, 400 if not _is_json(delivery.body) else 422)
    if not stored:
        return Answer("duplicate", delivery.external_id)
    return Answer(delivery.status, delivery.external_id)


def process_pending(session: Session, mappings: Mappings, limit: int = 200) -> int:
    """Apply stored alert events to their incidents, oldest first; one bad event never blocks the rest."""
    rows = inbox.claim_pending(session, limit)
    for row in rows:
        try:
            with session.begin_nested():
                event = PARSERS[row.source](row.body.encode("utf-8"))
                incident = apply_event(session, mappings, event, row.id or 0, row.received_at)
                recurrence.link_if_recurring(session, incident)
                open_postmortem_if_due(session, mappings, incident)
                row.incident_id = incident.id
        except OperationalError:
            # A deadlock with another applier (or the database going away) is transient: the event stays pending and
            # is applied on a later pass, instead of being parked as failed.
            log.warning("inbound event %s not applied this time (transient database error); it stays pending", row.id)
            session.flush()
            return rows.index(row)  # what was applied; 0 lets the caller pause before trying again
        except Exception as exc:  # a parser or domain bug: park the event with the reason instead of looping on it
            log.exception("inbound event %s could not be applied", row.id)
            row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        row.processed_at = utcnow()
        session.add(row)
    session.flush()
    return len(rows)


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


def receive_tracker_event(
    session: Session,
    mappings: Mappings,
    source: str,
    body: bytes,
    delivery_id: str | None,
    parse: Callable[[bytes], TrackerEvent | None],
) -> Answer:
    """Store a tracker webhook delivery (deduplicated by its delivery id) and apply the status it carries now."""
    try:
        event = parse(body)
    except PayloadError as exc:
        dead = _dead_letter(source, body, exc)
        return answer(dead, inbox.store_many(session, [dead])[0])
    event_id = delivery_id or "sha256:" + hashlib.sha256(body).hexdigest()
    # Tracker events are few and applied here and now, so the row is stored as already processed.
    delivery = Delivery(source, event_id, source, IGNORED if event is None else ACCEPTED, body)
    stored = inbox.store_many(session, [delivery])[0]
    if event is None or not stored:
        return answer(delivery, stored)
    tracking.apply_tracker_event(session, mappings, event)
    return Answer(ACCEPTED, event_id)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
