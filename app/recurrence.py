"""Recurrence: a new incident with the fingerprint of one that already had a postmortem is the same failure again."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlmodel import Session, select

from app import jobs, ledger, verification
from app.actions import Action
from app.incidents import Incident
from app.jobs import JobKind
from app.vocabulary import CLOSED, ActionStatus, LedgerKind, LedgerSource

_NEVER = datetime.min.replace(tzinfo=UTC)


class Recurrences:
    """Recurrence checks for a batch of incidents: the earlier incidents with a postmortem that share a fingerprint
    with any of them, read in one query, and told of the postmortems the batch opens meanwhile."""

    def __init__(self, session: Session, fingerprints: Iterable[str | None]) -> None:
        self.session = session
        self.candidates: dict[str, list[Incident]] = defaultdict(list)
        wanted = sorted({f for f in fingerprints if f is not None})
        if wanted:
            query = select(Incident).where(
                Incident.fingerprint.in_(wanted),  # type: ignore[union-attr]
                Incident.postmortem_id.is_not(None),  # type: ignore[union-attr]
            )
            for incident in session.exec(query).all():
                self.candidates[incident.fingerprint or ""].append(incident)

    def opened(self, incident: Incident) -> None:
        """The incident got a postmortem in this batch: later incidents of the batch may recur it."""
        if incident.fingerprint is not None and incident not in self.candidates[incident.fingerprint]:
            self.candidates[incident.fingerprint].append(incident)

    def earlier(self, incident: Incident) -> Incident | None:
        """The latest-triggered earlier incident, of another postmortem, with the same fingerprint."""
        if incident.fingerprint is None or incident.id is None:
            return None
        found = [c for c in self.candidates[incident.fingerprint] if _precedes(c, incident)]
        return max(found, key=lambda c: c.triggered_at or _NEVER, default=None)

    def link(self, incident: Incident) -> Incident | None:
        """Link the incident to the earlier one it repeats, once; tell every open action of that postmortem, and
        every done one whose fix was not verified as held (app/verification.py).

        Each gets a `recurred` ledger entry and a comment on its tracker issue (a job, so the webhook answer never
        waits on a tracker).
        """
        if incident.recurrence_of is not None:
            return None
        earlier = self.earlier(incident)
        if earlier is None or earlier.postmortem_id is None:
            return None
        _link(self.session, incident, earlier, earlier.postmortem_id)
        return earlier


def _precedes(candidate: Incident, incident: Incident) -> bool:
    if candidate.id == incident.id or candidate.postmortem_id is None:
        return False
    if incident.postmortem_id is not None and candidate.postmortem_id == incident.postmortem_id:
        return False
    if incident.triggered_at is None:
        return True
    return candidate.triggered_at is not None and candidate.triggered_at < incident.triggered_at


def _link(session: Session, incident: Incident, earlier: Incident, postmortem_id: int) -> None:
    earlier_actions = list(session.exec(select(Action).where(Action.postmortem_id == postmortem_id)).all())
    all_done = bool(earlier_actions) and all(a.status in CLOSED for a in earlier_actions)
    incident.recurrence_of, incident.recurred_after_actions_done = earlier.id, all_done
    session.add(incident)
    for action in earlier_actions:
        # Open actions hear of every recurrence; a done one only while its fix is not verified as held (it becomes
        # `recurred`, and its issue is told even when closed); won't do, never.
        after_done = action.status == ActionStatus.DONE
        if action.id is None or (after_done and not verification.mark_recurred(session, action, incident)):
            continue
        if action.status in CLOSED and not after_done:
            continue
        details = {"incident_id": incident.id, "earlier_incident_id": earlier.id, "incident_url": incident.url}
        ledger.append(
            session,
            kind=LedgerKind.RECURRED,
            source=LedgerSource.SYSTEM,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            details={**details, "after_done": True} if after_done else details,
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
