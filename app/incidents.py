"""Incidents and their timelines: state is replayed from the timeline in event-time order, never arrival order."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint, false
from sqlmodel import Field, Session, SQLModel, select

from app.db import EnumText, UTCDateTime, insert_ignoring_conflict, is_postgres, page, utcnow
from app.errors import NotFound
from app.mappings import Mappings
from app.vocabulary import IncidentStatus, Severity
from connectors.events import AlertEvent, IncidentSnapshot, TimelineKind


class Incident(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    title: str = Field(default="", sa_column=Column(Text, nullable=False))
    service: str | None = Field(default=None, max_length=255, index=True)
    team: str | None = Field(default=None, max_length=255, index=True)
    severity: Severity = Field(default=Severity.UNKNOWN, sa_type=EnumText(Severity, 16))
    priority: str | None = Field(default=None, max_length=64)
    urgency: str | None = Field(default=None, max_length=16)
    status: IncidentStatus = Field(default=IncidentStatus.TRIGGERED, sa_type=EnumText(IncidentStatus, 16), index=True)
    triggered_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    url: str | None = Field(default=None, sa_column=Column(Text))
    dedup_key: str | None = Field(default=None, max_length=255)
    fingerprint: str | None = Field(default=None, max_length=64, index=True)
    recurrence_of: int | None = Field(default=None, foreign_key="incident.id")
    # When it recurred, were all actions of the earlier postmortem done? True is the signal a fix did not work.
    recurred_after_actions_done: bool | None = None
    postmortem_id: int | None = Field(default=None, foreign_key="postmortem.id", index=True)
    # Set once a person put the incident into a postmortem or took it out: trigger rules leave it alone from then on.
    postmortem_by_hand: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entry"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    inbound_event_id: int = Field(foreign_key="inbound_event.id", unique=True)
    event_key: str = Field(max_length=255)  # the source's event id: a stable tie-break for equal times
    at: datetime = Field(sa_type=UTCDateTime)
    kind: TimelineKind = Field(sa_type=EnumText(TimelineKind, 32))
    actor: str | None = Field(default=None, max_length=255)
    text: str | None = Field(default=None, sa_column=Column(Text))
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# Equal timestamps are ordered by lifecycle, so a same-millisecond ack and resolve replay sensibly.
_KIND_RANK = {
    TimelineKind.TRIGGERED: 0,
    TimelineKind.REOPENED: 1,
    TimelineKind.ACKNOWLEDGED: 2,
    TimelineKind.UNACKNOWLEDGED: 3,
    TimelineKind.RESOLVED: 9,
}


def timeline_order(entry: TimelineEntry) -> tuple[datetime, int, str]:
    return (entry.at, _KIND_RANK.get(entry.kind, 5), entry.event_key)


@dataclass(frozen=True)
class ReplayedState:
    status: IncidentStatus
    triggered_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    snapshot: IncidentSnapshot


def replay(entries: Sequence[TimelineEntry]) -> ReplayedState:
    """The incident's state after its timeline, in event-time order; the same whatever the arrival order."""
    steps = list(replay_steps(entries))
    return steps[-1][1] if steps else ReplayedState(IncidentStatus.TRIGGERED, None, None, None, IncidentSnapshot())


def replay_steps(entries: Sequence[TimelineEntry]) -> Iterator[tuple[TimelineEntry, ReplayedState]]:
    """Each entry in event-time order with the incident's state right after it (trigger rules judge every step)."""
    status: IncidentStatus | None = None
    triggered_at = acknowledged_at = resolved_at = None
    snapshot = IncidentSnapshot()
    ordered = sorted(entries, key=timeline_order)
    for entry in ordered:
        said = _snapshot_of(entry)
        added, removed = said.pop("tags_added", None) or (), said.pop("tags_removed", None) or ()
        snapshot = replace(snapshot, **{k: v for k, v in said.items() if v is not None})
        if added or removed:  # a change to the set rather than the whole set
            kept = [t for t in snapshot.tags or () if t not in removed]
            snapshot = replace(snapshot, tags=(*kept, *[t for t in added if t not in kept]))
        if entry.kind == TimelineKind.TRIGGERED:
            triggered_at = triggered_at or entry.at
            if status in (None, IncidentStatus.RESOLVED):
                # A second Create for an open alert (a team was added) changes nothing; after a close it re-opens.
                status, resolved_at = IncidentStatus.TRIGGERED, None
        elif entry.kind == TimelineKind.REOPENED:
            status, resolved_at = IncidentStatus.TRIGGERED, None
        elif entry.kind == TimelineKind.ACKNOWLEDGED:
            acknowledged_at = acknowledged_at or entry.at
            if status != IncidentStatus.RESOLVED:
                status = IncidentStatus.ACKNOWLEDGED
        elif entry.kind == TimelineKind.UNACKNOWLEDGED and status == IncidentStatus.ACKNOWLEDGED:
            status = IncidentStatus.TRIGGERED
        elif entry.kind == TimelineKind.RESOLVED:
            status, resolved_at = IncidentStatus.RESOLVED, entry.at
        # The trigger was never delivered (or not yet): the source's creation time, else the first thing we saw.
        started = triggered_at or snapshot.created_at or ordered[0].at
        yield entry, ReplayedState(status or IncidentStatus.TRIGGERED, started, acknowledged_at, resolved_at, snapshot)


def _snapshot_of(entry: TimelineEntry) -> dict[str, Any]:
    data = dict(entry.snapshot)
    if data.get("created_at"):
        data["created_at"] = datetime.fromisoformat(data["created_at"])
    for key in ("tags", "tags_added", "tags_removed"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return data


def snapshot_json(snapshot: IncidentSnapshot) -> dict[str, Any]:
    data = {k: v for k, v in vars(snapshot).items() if v is not None}
    if snapshot.created_at is not None:
        data["created_at"] = snapshot.created_at.isoformat()
    return data


def severity_for(mappings: Mappings, source: str, priority: str | None, urgency: str | None) -> Severity:
    sev = mappings.severity
    if source == "pagerduty":
        if priority and priority in sev.pagerduty_priority:
            return sev.pagerduty_priority[priority]
        if urgency and urgency in sev.pagerduty_urgency:
            return sev.pagerduty_urgency[urgency]
        return sev.default
    if priority is None:
        return sev.opsgenie_default
    return sev.opsgenie_priority.get(priority, sev.default)


_NOISE = [
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),  # uuids
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"),  # IPv4 addresses
    re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+){2,}\b"),  # host names
    re.compile(r"\b[0-9a-f]{7,}\b"),  # hashes and hex ids
    re.compile(r"\d+(?:[.,]\d+)?"),  # numbers, percentages, durations
]


def fingerprint_for(source: str, service: str | None, title: str, dedup_key: str | None) -> str:
    """Stable identity of "the same failure": the source's dedup key, else service + title without noise."""
    if dedup_key:
        basis = f"{source}|key|{dedup_key}"
    else:
        normalized = title.lower()
        for pattern in _NOISE:
            normalized = pattern.sub("#", normalized)
        normalized = re.sub(r"\s+", " ", normalized).strip()
        basis = f"{(service or '').lower()}|{normalized}"
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def lock_or_create(session: Session, source: str, external_id: str) -> Incident:
    """The incident row, created if new, locked so concurrent events for it apply one after the other."""
    now = utcnow()
    insert_ignoring_conflict(
        session,
        Incident,
        {"source": source, "external_id": external_id, "title": "", "created_at": now, "updated_at": now},
        ["source", "external_id"],
    )
    query = select(Incident).where(Incident.source == source, Incident.external_id == external_id)
    if is_postgres(session):
        query = query.with_for_update()
    incident: Incident = session.exec(query.execution_options(populate_existing=True)).one()
    return incident


def apply_event(
    session: Session, mappings: Mappings, event: AlertEvent, inbound_event_id: int, received_at: datetime
) -> Incident:
    """Add the event to its incident's timeline and replay the incident's state from the whole timeline."""
    assert event.incident_external_id is not None and event.kind is not None
    incident = lock_or_create(session, event.source, event.incident_external_id)
    assert incident.id is not None
    session.add(
        TimelineEntry(
            incident_id=incident.id,
            inbound_event_id=inbound_event_id,
            event_key=event.event_id,
            at=event.at or received_at,
            kind=event.kind,
            actor=event.actor,
            text=event.text,
            snapshot=snapshot_json(event.snapshot),
        )
    )
    session.flush()
    state = replay(timeline(session, incident.id))
    snap = state.snapshot
    incident.title = snap.title or incident.title or f"{event.source} incident {event.incident_external_id}"
    incident.service, incident.team, incident.url = (
        mappings.services.service_of(event.source, snap),
        snap.team,
        snap.url,
    )
    incident.tags = list(snap.tags or ())
    incident.priority, incident.urgency, incident.dedup_key = snap.priority, snap.urgency, snap.dedup_key
    incident.severity = severity_for(mappings, event.source, snap.priority, snap.urgency)
    incident.status = state.status
    incident.triggered_at, incident.acknowledged_at = state.triggered_at, state.acknowledged_at
    incident.resolved_at = state.resolved_at
    incident.fingerprint = fingerprint_for(event.source, incident.service, incident.title, snap.dedup_key)
    incident.updated_at = utcnow()
    session.add(incident)
    session.flush()
    return incident


def timeline(session: Session, incident_id: int) -> list[TimelineEntry]:
    rows = session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)).all()
    return sorted(rows, key=timeline_order)


def list_page(
    session: Session,
    *,
    status: IncidentStatus | None,
    service: str | None,
    since: datetime | None,
    after: int | None,
    limit: int,
) -> tuple[list[Incident], str | None]:
    query = select(Incident)
    if status:
        query = query.where(Incident.status == status)
    if service:
        query = query.where(Incident.service == service)
    if since:
        query = query.where(Incident.triggered_at >= since)  # type: ignore[operator]
    return page(session, query, Incident.id, after, limit)


def get(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def timelines(session: Session, incident_ids: list[int]) -> dict[int, list[TimelineEntry]]:
    result: dict[int, list[TimelineEntry]] = {i: [] for i in incident_ids}
    if incident_ids:
        rows = session.exec(select(TimelineEntry).where(TimelineEntry.incident_id.in_(incident_ids))).all()  # type: ignore[attr-defined]
        for row in rows:
            result[row.incident_id].append(row)
    return {i: sorted(entries, key=timeline_order) for i, entries in result.items()}
