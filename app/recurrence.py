"""Recurrence: a new incident with the fingerprint of one that already had a postmortem is the same failure again."""

from __future__ import annotations

from sqlmodel import Session, select

from app.incidents import Incident


def earlier_with_postmortem(session: Session, incident: Incident) -> Incident | None:
    if incident.fingerprint is None or incident.id is None:
        return None
    query = select(Incident).where(
        Incident.fingerprint == incident.fingerprint,
        Incident.id != incident.id,
        Incident.postmortem_id.is_not(None),  # type: ignore[union-attr]
    )
    if incident.postmortem_id is not None:
        query = query.where(Incident.postmortem_id != incident.postmortem_id)
    query = query.order_by(Incident.triggered_at.desc()).limit(1)  # type: ignore[union-attr]
    earlier = session.exec(query).first()
    if earlier is None or earlier.triggered_at is None or incident.triggered_at is None:
        return earlier
    return earlier if earlier.triggered_at < incident.triggered_at else None


def link_if_recurring(session: Session, incident: Incident) -> Incident | None:
    """Link the incident to the earlier one it repeats; returns that earlier incident the first time only."""
    if incident.recurrence_of is not None:
        return None
    earlier = earlier_with_postmortem(session, incident)
    if earlier is None:
        return None
    incident.recurrence_of = earlier.id
    session.add(incident)
    session.flush()
    return earlier
