"""Recurrence: a new incident with the fingerprint of one that already had a postmortem is the same failure again."""

from __future__ import annotations

from sqlmodel import Session, select

from app import jobs, ledger
from app.actions import Action
from app.incidents import Incident
from app.jobs import JobKind
from app.vocabulary import CLOSED, LedgerKind, LedgerSource


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
    if incident.triggered_at is not None:
        query = query.where(Incident.triggered_at < incident.triggered_at)  # type: ignore[operator]
    return session.exec(query.order_by(Incident.triggered_at.desc()).limit(1)).first()  # type: ignore[union-attr]


def link_if_recurring(session: Session, incident: Incident) -> Incident | None:
    """Link the incident to the earlier one it repeats, once; tell every open action of that postmortem.

    Each open action gets a `recurred` ledger entry and a comment on its tracker issue (a job, so the
    webhook answer never waits on a tracker).
    """
    if incident.recurrence_of is not None or incident.id is None:
        return None
    earlier = earlier_with_postmortem(session, incident)
    if earlier is None or earlier.postmortem_id is None:
        return None
    earlier_actions = list(session.exec(select(Action).where(Action.postmortem_id == earlier.postmortem_id)).all())
    all_done = bool(earlier_actions) and all(a.status in CLOSED for a in earlier_actions)
    incident.recurrence_of, incident.recurred_after_actions_done = earlier.id, all_done
    session.add(incident)
    for action in earlier_actions:
        if action.status in CLOSED or action.id is None:
            continue
        ledger.append(
            session,
            kind=LedgerKind.RECURRED,
            source=LedgerSource.SYSTEM,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            details={"incident_id": incident.id, "earlier_incident_id": earlier.id, "incident_url": incident.url},
        )
        if action.tracker_key:
            jobs.enqueue(
                session,
                JobKind.COMMENT,
                action_id=action.id,
                payload={"reason": "recurred", "incident_id": incident.id},
                dedup_key=f"recurred:{action.id}:{incident.id}",
            )
    session.flush()
    return earlier


def recurrences_of(session: Session, postmortem_ids: list[int]) -> dict[int, list[Incident]]:
    """Per postmortem, the later incidents that repeated one of its incidents."""
    result: dict[int, list[Incident]] = {p: [] for p in postmortem_ids}
    if not postmortem_ids:
        return result
    covered = {
        incident_id: postmortem_id
        for incident_id, postmortem_id in session.exec(
            select(Incident.id, Incident.postmortem_id).where(Incident.postmortem_id.in_(postmortem_ids))  # type: ignore[union-attr]
        ).all()
        if incident_id is not None and postmortem_id is not None
    }
    if covered:
        query = select(Incident).where(Incident.recurrence_of.in_(list(covered))).order_by(Incident.id)  # type: ignore[union-attr,arg-type]
        for incident in session.exec(query).all():
            result[covered[incident.recurrence_of or 0]].append(incident)
    return result
