"""Tracker webhooks flow: store a tracker's own delivery (deduplicated by its delivery id), then record the status it
carries on the action it is about. Polling stays on as the safety net; a change seen here is not written twice."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, select

from app import inbox, tracking
from app.actions import Action
from app.inbox import Delivery, DeliveryStatus
from app.ingest import Answer, answer, dead_letter
from app.mappings import Mappings
from app.vocabulary import LedgerSource
from connectors.events import PayloadError
from connectors.tracker_webhooks import TrackerEvent, TrackerHook


def receive(session: Session, mappings: Mappings, hook: TrackerHook, body: bytes, headers: dict[str, str]) -> Answer:
    """Store the delivery and apply the status it carries now (tracker events are few: no queue needed)."""
    source = str(hook.kind)
    try:
        event = hook.parse(headers, body)
    except PayloadError as exc:
        dead = dead_letter(source, body, exc)
        return answer(dead, inbox.store_many(session, [dead])[0])
    event_id = headers.get(hook.delivery_header) or "sha256:" + hashlib.sha256(body).hexdigest()
    # Applied here and now, so the row is stored as already processed.
    status = DeliveryStatus.IGNORED if event is None else DeliveryStatus.ACCEPTED
    delivery = Delivery(source, event_id, source, status, body)
    stored = inbox.store_many(session, [delivery])[0]
    if event is None or not stored:
        return answer(delivery, stored)
    apply(session, mappings, event)
    return Answer(DeliveryStatus.ACCEPTED, event_id)


def apply(session: Session, mappings: Mappings, event: TrackerEvent) -> bool:
    """A change pushed by the tracker's own webhook; the next poll then finds nothing left to record."""
    action = session.exec(
        select(Action).where(Action.tracker_kind == event.tracker, Action.tracker_key == event.key)
    ).first()
    if action is None:
        return False  # not an issue Aftermath filed
    if event.deleted:
        return tracking.mark_missing(session, action, LedgerSource.WEBHOOK)
    assert event.state is not None
    return tracking.apply_state(session, mappings, action, event.state, LedgerSource.WEBHOOK)
