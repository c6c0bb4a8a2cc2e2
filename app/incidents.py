"""Incidents and their timelines (the state they imply is app/timeline.py's), severity, fingerprints, queries."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, false
from sqlmodel import Field, Session, SQLModel, select

from app.db import EnumText, UTCDateTime, page, utcnow
from app.errors import NotFound
from app.mappings import Mappings
from app.timeline import Progress, order_key
from app.vocabulary import IncidentStatus, Severity
from connectors.events import TimelineKind


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
    # app.timeline.Progress as JSON: where the timeline's fold stands, so the next event in order costs the same however
    # long the timeline is. None for an incident from before it was kept: its next event replays it all once.
    progress: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Set once a person put the incident into a postmortem or took it out: trigger rules leave it alone from then on.
    postmortem_by_hand: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entry"
    # (incident, time): a late event reads its incident's timeline from its own time on, not the whole of it.
    __table_args__ = (Index("ix_timeline_entry_incident_id_at", "incident_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    inbound_event_id: int = Field(foreign_key="inbound_event.id", unique=True)
    event_key: str = Field(max_length=255)  # the source's event id: a stable tie-break for equal times
    at: datetime = Field(sa_type=UTCDateTime)
    kind: TimelineKind = Field(sa_type=EnumText(TimelineKind, 32))
    actor: str | None = Field(default=None, max_length=255)
    text: str | None = Field(default=None, sa_column=Column(Text))
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    fold: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # app.timeline.Fold after this entry


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


def settled(mappings: Mappings, source: str, external_id: str, title: str, progress: Progress) -> dict[str, Any]:
    """The incident's fields as its timeline now says them (`title`: its title so far), and the progress kept for its
    next events."""
    state = progress.state()
    snap = state.snapshot
    title = snap.title or title or f"{source} incident {external_id}"
    service = mappings.services.service_of(source, snap)
    return {
        "title": title,
        "service": service,
        "tags": list(snap.tags or ()),
        "team": snap.team,
        "url": snap.url,
        "priority": snap.priority,
        "urgency": snap.urgency,
        "dedup_key": snap.dedup_key,
        "severity": severity_for(mappings, source, snap.priority, snap.urgency),
        "status": state.status,
        "triggered_at": state.triggered_at,
        "acknowledged_at": state.acknowledged_at,
        "resolved_at": state.resolved_at,
        "fingerprint": fingerprint_for(source, service, title, snap.dedup_key),
        "progress": progress.to_json(),
        "updated_at": utcnow(),
    }


def timeline(session: Session, incident_id: int) -> list[TimelineEntry]:
    return timelines(session, [incident_id]).get(incident_id, [])


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
    """The timelines of several incidents in one query, each in event order."""
    result: dict[int, list[TimelineEntry]] = {i: [] for i in incident_ids}
    if incident_ids:
        rows = session.exec(select(TimelineEntry).where(TimelineEntry.incident_id.in_(incident_ids))).all()  # type: ignore[attr-defined]
        for row in rows:
            result[row.incident_id].append(row)
    return {i: sorted(entries, key=order_key) for i, entries in result.items()}
