"""Trigger rules, judged on the incident's own timeline: the first rule to match in event time opens (or names) its
postmortem, so the same events give the same postmortem whatever the order and delay of their delivery."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlmodel import Session, select

from app.incidents import Incident, TimelineEntry, severity_for
from app.mappings import Mappings, TriggerCondition
from app.postmortems import Postmortem, PostmortemRevision, incidents_of, open_for_incident, record_revision
from app.timeline import Progress, ReplayedState, order_key
from app.vocabulary import IncidentStatus

log = logging.getLogger(__name__)
SYSTEM = "system"


@dataclass(frozen=True)
class Match:
    rule: str
    at: datetime  # when, in the incident's own time, the rule started to hold


def first_match(mappings: Mappings, source: str, entries: list[TimelineEntry]) -> Match | None:
    """The rule that held first in the incident's event time (ties: the order of triggers.yaml), or None.

    Each state of the replayed timeline holds from its event to the next one; the last holds only at the newest
    event time seen, so the wall clock plays no part: "open longer than 30m" is measured from the trigger to the
    resolve or, while unresolved, to the newest event, and holds from trigger + 30m.
    """
    rules = mappings.triggers.rules
    steps = list(replay_steps(entries))
    for i, (entry, state) in enumerate(steps):
        until = steps[i + 1][0].at if i + 1 < len(steps) else entry.at
        hits = [
            (at, order, rule.name)
            for order, rule in enumerate(rules)
            if (at := _holds_from(rule.when, mappings, source, state, entry.at, until)) is not None
        ]
        if hits:
            at, _, name = min(hits)
            return Match(name, at)
    return None


def replay_steps(entries: Sequence[TimelineEntry]) -> Iterator[tuple[TimelineEntry, ReplayedState]]:
    """Each entry in event-time order with the incident's state right after it (rules judge every step)."""
    progress = Progress()
    for entry in sorted(entries, key=order_key):
        progress = replace(progress.counted([entry]), fold=progress.fold.step(entry))
        yield entry, progress.state()


def _holds_from(
    when: TriggerCondition, mappings: Mappings, source: str, state: ReplayedState, start: datetime, until: datetime
) -> datetime | None:
    """When within [start, until] the condition first holds for this state of the incident, or None."""
    snap = state.snapshot
    if when.source and source != when.source:
        return None
    if when.severity and severity_for(mappings, source, snap.priority, snap.urgency) not in when.severity:
        return None
    if when.urgency and snap.urgency not in when.urgency:
        return None
    if when.service and mappings.services.service_of(source, snap) not in when.service:
        return None
    if when.open_longer_than is None:
        return start
    return _open_longer(state, when.open_longer_than, start, until)


def _open_longer(state: ReplayedState, limit: timedelta, start: datetime, until: datetime) -> datetime | None:
    if state.triggered_at is None:
        return None
    if state.status == IncidentStatus.RESOLVED:
        assert state.resolved_at is not None
        return start if state.resolved_at - state.triggered_at > limit else None
    # Open: longer than the limit from trigger + limit on, if the step lasts past that moment.
    return max(start, state.triggered_at + limit) if until - state.triggered_at > limit else None


def apply_rules(session: Session, mappings: Mappings, incident: Incident, entries: list[TimelineEntry]) -> bool:
    """After an event was applied: open the postmortem the rules call for, correct the rule it is recorded under, or
    withdraw one that no rule calls for any more and nobody has touched. A person's choice is never overridden: a
    postmortem opened by hand or covering several incidents, or an incident a person moved, is left alone. True when
    a postmortem was opened. `entries`: the incident's whole timeline, in event order (the caller reads a batch's
    timelines in one query)."""
    if incident.postmortem_by_hand or incident.id is None:
        return False
    match = first_match(mappings, incident.source, entries)
    if incident.postmortem_id is None:
        if match is None:
            return False
        review_due_days = mappings.triggers.review_due_days
        open_for_incident(session, incident, author=SYSTEM, trigger=match.rule, review_due_days=review_due_days)
        return True
    postmortem = session.get(Postmortem, incident.postmortem_id)
    if (
        postmortem is None
        or postmortem.trigger in (None, "manual")
        or len(incidents_of(session, incident.postmortem_id)) != 1
    ):
        return False
    if match is None:
        if _untouched(session, postmortem):
            _withdraw(session, postmortem, incident)
        return False
    if match.rule != postmortem.trigger:
        changes = {"trigger": {"from": postmortem.trigger, "to": match.rule, "matched_at": match.at}}
        postmortem.trigger = match.rule
        record_revision(session, postmortem, SYSTEM, changes)
        session.flush()
    return False


def _untouched(session: Session, postmortem: Postmortem) -> bool:
    """Nothing but the rules has changed it (every finding, action and edit is a revision by its author)."""
    authors = session.exec(
        select(PostmortemRevision.author).where(PostmortemRevision.postmortem_id == postmortem.id)
    ).all()
    return all(author == SYSTEM for author in authors)


def _withdraw(session: Session, postmortem: Postmortem, incident: Incident) -> None:
    """A late event showed no rule holds (say, the resolve came after a later note): the automatic postmortem
    should never have been opened, and nobody has worked on it, so it goes."""
    log.info("withdrawing %s: no trigger rule holds for incident %s any more", postmortem.key, incident.id)
    incident.postmortem_id = None
    session.add(incident)
    session.flush()
    for revision in session.exec(
        select(PostmortemRevision).where(PostmortemRevision.postmortem_id == postmortem.id)
    ).all():
        session.delete(revision)
    session.flush()
    session.delete(postmortem)
    session.flush()
