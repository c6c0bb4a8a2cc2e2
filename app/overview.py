"""What the pages show beyond single rows: the Monday overview (late and due-soon actions by team and owner, late
reviews, escalations, recurrences, recent incidents) and the labels of the postmortems a list of actions belongs to.

Every list is capped (`CAP`): an overview that needs thousands of rows to say "too much is late" says it with the
count and a link to the filtered /actions list instead."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.actions import Action
from app.incidents import Incident
from app.ledger import LedgerEntry
from app.postmortems import UNPUBLISHED, Postmortem
from app.vocabulary import CLOSED, ActionStatus, LedgerKind

CAP = 100
DUE_SOON_DAYS = 7
RECURRENCE_DAYS = 30
RECENT_DAYS = 7


@dataclass(frozen=True)
class Label:
    """A postmortem as a list row names it: its key, title, and the teams and services of its incidents."""

    id: int
    key: str
    title: str
    status: str
    teams: tuple[str, ...]
    services: tuple[str, ...]

    @property
    def team(self) -> str | None:
        return self.teams[0] if self.teams else None


def labels(session: Session, postmortem_ids: Iterable[int]) -> dict[int, Label]:
    ids = sorted(set(postmortem_ids))
    if not ids:
        return {}
    rows = session.exec(select(Postmortem).where(col(Postmortem.id).in_(ids))).all()
    owners = session.exec(
        select(Incident.postmortem_id, Incident.team, Incident.service).where(col(Incident.postmortem_id).in_(ids))
    ).all()
    teams: dict[int, set[str]] = {i: set() for i in ids}
    services: dict[int, set[str]] = {i: set() for i in ids}
    for postmortem_id, team, service in owners:
        if postmortem_id is not None:
            if team:
                teams[postmortem_id].add(team)
            if service:
                services[postmortem_id].add(service)
    return {
        p.id: Label(
            p.id,
            p.key or f"PM-{p.id}",
            p.title,
            str(p.status),
            tuple(sorted(teams[p.id])),
            tuple(sorted(services[p.id])),
        )
        for p in rows
        if p.id is not None
    }


@dataclass(frozen=True)
class Told:
    level: int
    to: str | None
    at: datetime | None


@dataclass
class Group:
    """The late and due-soon actions of one team, by owner (None: no team or no owner recorded)."""

    team: str | None
    owners: dict[str | None, list[Action]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(rows) for rows in self.owners.values())


@dataclass(frozen=True)
class Overview:
    today: date
    now: datetime
    overdue_count: int
    due_soon_count: int
    groups: list[Group]
    late_reviews: list[Postmortem]
    escalations: list[tuple[Action, Told]]
    recurrences: list[tuple[Incident, int | None]]  # the recurring incident, the earlier incident's postmortem
    recent: list[tuple[Incident, Postmortem | None]]
    labels: dict[int, Label]


# Open statuses by name rather than NOT IN (closed): each is then a range of ix_action_status_due_date.
OPEN = tuple(s for s in ActionStatus if s not in CLOSED)


def _late(session: Session, today: date) -> tuple[int, int, list[Action]]:
    """Overdue and due-soon counts, and the first CAP of those actions, earliest due first.

    One index range per open status (status, due_date < cutoff), merged here: a single ORDER BY due_date over all open
    statuses walked the due-date index through every closed action due earlier (77 ms over 100,000 actions)."""
    cutoff = today + timedelta(days=DUE_SOON_DAYS + 1)
    due = col(Action.due_date)
    counts = session.execute(
        select(func.count().filter(due < today), func.count())
        .select_from(Action)
        .where(col(Action.status).in_(OPEN), due < cutoff)
    ).one()
    ranges = [
        session.exec(
            select(Action).where(col(Action.status) == status, due < cutoff).order_by(due, col(Action.id)).limit(CAP)
        ).all()
        for status in OPEN
    ]
    merged = heapq.merge(*ranges, key=lambda a: (a.due_date, a.id))
    return int(counts[0]), int(counts[1]), list(itertools.islice(merged, CAP))


def overview(session: Session, now: datetime) -> Overview:
    """The overview at `now`: due soon means due today or within the next 7 days, overdue due before today."""
    today = now.astimezone(UTC).date()
    overdue_count, in_window, late = _late(session, today)
    late_reviews = list(
        session.exec(
            select(Postmortem)
            .where(col(Postmortem.review_due) < today, col(Postmortem.status).in_(UNPUBLISHED))
            .order_by(col(Postmortem.review_due), col(Postmortem.id))
            .limit(CAP)
        ).all()
    )
    escalated = list(
        session.exec(
            select(Action)
            .where(col(Action.escalation_level) >= 1, col(Action.status).in_(OPEN))
            .order_by(col(Action.escalation_level).desc(), col(Action.due_date), col(Action.id))
            .limit(CAP)
        ).all()
    )
    earlier = aliased(Incident)
    recurrences = list(
        session.exec(
            select(Incident, earlier.postmortem_id)
            .join(earlier, col(Incident.recurrence_of) == earlier.id)
            .where(
                col(Incident.recurrence_of).is_not(None),
                col(Incident.triggered_at) >= now - timedelta(days=RECURRENCE_DAYS),
            )
            .order_by(col(Incident.triggered_at).desc())
            .limit(CAP)
        ).all()
    )
    recent = list(
        session.exec(
            select(Incident, Postmortem)
            .outerjoin(Postmortem, col(Incident.postmortem_id) == col(Postmortem.id))
            .where(col(Incident.triggered_at) >= now - timedelta(days=RECENT_DAYS))
            .order_by(col(Incident.triggered_at).desc())
            .limit(CAP)
        ).all()
    )
    named = labels(
        session,
        [a.postmortem_id for a in late + escalated] + [p for _, p in recurrences if p is not None],
    )
    return Overview(
        today=today,
        now=now,
        overdue_count=overdue_count,
        due_soon_count=in_window - overdue_count,
        groups=_grouped(late, named),
        late_reviews=late_reviews,
        escalations=list(zip(escalated, _told(session, escalated), strict=True)),
        recurrences=[(incident, postmortem_id) for incident, postmortem_id in recurrences],
        recent=[(incident, postmortem) for incident, postmortem in recent],
        labels=named,
    )


def _grouped(rows: list[Action], named: dict[int, Label]) -> list[Group]:
    """By team (a postmortem of several teams' incidents: the first, alphabetically), then owner; named first."""
    groups: dict[str | None, Group] = {}
    for action in rows:
        label = named.get(action.postmortem_id)
        team = label.team if label else None
        group = groups.setdefault(team, Group(team))
        group.owners.setdefault(action.owner, []).append(action)
    ordered = sorted(groups.values(), key=lambda g: (g.team is None, g.team or ""))
    for group in ordered:
        group.owners = dict(sorted(group.owners.items(), key=lambda item: (item[0] is None, (item[0] or "").lower())))
    return ordered


def _told(session: Session, rows: list[Action]) -> list[Told]:
    """Who the latest escalation step of each action told, from its `escalated` ledger entry."""
    ids = [a.id for a in rows if a.id is not None]
    latest: dict[int, LedgerEntry] = {}
    if ids:
        entries = session.exec(
            select(LedgerEntry)
            .where(col(LedgerEntry.action_id).in_(ids), col(LedgerEntry.kind) == LedgerKind.ESCALATED)
            .order_by(col(LedgerEntry.id))
        ).all()
        for entry in entries:
            if entry.action_id is not None:
                latest[entry.action_id] = entry
    told = []
    for action in rows:
        last = latest.get(action.id or 0)
        to = last.details.get("to") if last else None
        told.append(Told(action.escalation_level or 0, str(to) if to else None, action.escalated_at))
    return told
