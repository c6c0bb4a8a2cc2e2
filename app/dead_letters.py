"""Dead letters: authenticated alert bodies that could not be used (kept with their reason), and events whose apply
failed; listed for people to see, and replayed with today's parser once the cause is fixed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from app.db import page, utcnow
from app.inbox import DeliveryStatus, InboundEvent, storable
from app.ingest import PARSERS, classify_alert

UNUSABLE = (DeliveryStatus.DEAD_LETTER, DeliveryStatus.FAILED)


def list_page(
    session: Session, *, status: DeliveryStatus | None, source: str | None, after: int | None, limit: int
) -> tuple[list[InboundEvent], str | None]:
    statuses = [status] if status else list(UNUSABLE)
    query = select(InboundEvent).where(InboundEvent.status.in_(statuses))  # type: ignore[attr-defined]
    if source:
        query = query.where(InboundEvent.source == source)
    return page(session, query, InboundEvent.id, after, limit)


@dataclass(frozen=True)
class Replayed:
    id: int
    source: str
    outcome: str  # pending | ignored | duplicate | still_dead | not_replayable
    detail: str


def replay(session: Session, ids: list[int] | None = None) -> list[Replayed]:
    """Parse each dead letter again; one that parses now becomes an ordinary event (pending: the worker applies it),
    unless its event is stored already, which makes it a duplicate. A failed event is queued to be applied again.
    Idempotent: a replayed row is no longer a dead letter, so a second replay finds nothing to do."""
    query = select(InboundEvent).where(InboundEvent.status.in_(UNUSABLE))  # type: ignore[attr-defined]
    if ids is not None:
        query = query.where(InboundEvent.id.in_(ids))  # type: ignore[union-attr]
    rows = list(session.exec(query.order_by(InboundEvent.id).with_for_update()).all())  # type: ignore[arg-type]
    return [_replay_one(session, row) for row in rows]


def _replay_one(session: Session, row: InboundEvent) -> Replayed:
    assert row.id is not None
    if row.source not in PARSERS:
        # A tracker's delivery is parsed with its request headers, which are not kept; its next poll sees the change.
        return Replayed(row.id, row.source, "not_replayable", "the tracker's headers are not kept; polling covers it")
    if row.status == DeliveryStatus.FAILED:
        was = row.reason
        row.status, row.reason, row.processed_at = DeliveryStatus.ACCEPTED, None, None
        session.add(row)
        session.flush()
        return Replayed(row.id, row.source, "pending", f"queued to be applied again (it failed with: {was})")
    delivery = classify_alert(row.source, row.body.encode("utf-8"))
    event_id = storable(delivery.external_id)[:255]  # as the inbox keys it
    if delivery.status == DeliveryStatus.DEAD_LETTER:
        row.reason = delivery.reason
        session.add(row)
        return Replayed(row.id, row.source, "still_dead", delivery.reason or "")
    stored = session.exec(
        select(InboundEvent.id).where(
            InboundEvent.source == row.source, InboundEvent.external_id == delivery.external_id
        )
    ).first()
    if stored is not None:
        row.status, row.reason = DeliveryStatus.IGNORED, f"replayed: event {delivery.external_id} is stored already"
        session.add(row)
        return Replayed(row.id, row.source, "duplicate", f"event {delivery.external_id} is inbound event {stored}")
    row.external_id, row.event_type, row.status = delivery.external_id, delivery.event_type, delivery.status
    row.reason = None
    row.processed_at = None if delivery.pending else utcnow()
    session.add(row)
    session.flush()
    outcome = "pending" if delivery.pending else "ignored"
    return Replayed(row.id, row.source, outcome, f"now event {event_id} ({row.event_type})")
