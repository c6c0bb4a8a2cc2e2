"""Applying stored alert events to their incidents, a batch at a time: grouped by incident, each incident read, locked
and written once per batch. Events newer than everything in their incident's timeline are folded on; an older one
replays its incident only from the point where it belongs (app/timeline.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from app import inbox, incidents, triggers
from app.db import attach_inserted, is_postgres, utcnow
from app.inbox import Pending, storable
from app.incidents import Incident, TimelineEntry
from app.ingest import PARSERS
from app.logs import bound
from app.mappings import Mappings
from app.recurrence import Recurrences
from app.timeline import Fold, OrderKey, Progress, order_key, refold, snapshot_json
from connectors.events import AlertEvent, TimelineKind

log = logging.getLogger(__name__)
IncidentKey = tuple[str, str]
INCIDENT = Incident.__table__  # type: ignore[attr-defined]
TIMELINE = TimelineEntry.__table__  # type: ignore[attr-defined]


@dataclass
class NewEntry:
    """A timeline entry about to be written (the table row, without the ORM's cost per object)."""

    event_id: int  # the inbound event's row id
    incident: str  # the source's incident id
    at: datetime
    kind: TimelineKind
    event_key: str
    actor: str | None
    text: str | None
    snapshot: dict[str, Any]
    fold: dict[str, Any] | None = None

    def values(self, incident_id: int) -> dict[str, Any]:
        return {
            "incident_id": incident_id,
            "inbound_event_id": self.event_id,
            "event_key": self.event_key,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "text": self.text,
            "snapshot": self.snapshot,
            "fold": self.fold,
        }


@dataclass
class Outcome:
    """What one batch did, for the caller's log line and metrics."""

    events: int = 0
    incidents: int = 0
    replayed: int = 0  # incidents replayed from an earlier point (an event arrived older than their newest)
    failed: int = 0
    received: list[datetime] = field(default_factory=list)  # receipt times of the applied events


def apply_pending(session: Session, mappings: Mappings, limit: int = 500) -> Outcome:
    """Apply up to `limit` stored alert events, oldest first; one bad event never blocks the rest.

    A transient database error (a deadlock, the database going away) propagates: the caller rolls back and the
    events stay pending for the next pass.
    """
    rows = inbox.claim_pending(session, limit)
    outcome = Outcome(events=len(rows))
    if not rows:
        return outcome
    groups: dict[IncidentKey, list[NewEntry]] = {}
    failed: dict[int, str] = {}
    for row in rows:
        try:
            entry = _entry(row, PARSERS[row.source](row.body.encode("utf-8")))
        except Exception as exc:  # a parser bug: park the event with the reason instead of looping on it
            failed[row.id] = _reason(exc)
            continue
        groups.setdefault((row.source, entry.incident), []).append(entry)
    try:
        with session.begin_nested():
            applied = _apply(session, mappings, groups, outcome)
    except OperationalError:
        raise
    except Exception:
        # Some event of the batch cannot be stored or applied: find it, one event at a time, so the rest still go in.
        log.warning("a batch of %d events failed to apply as a whole; applying them one at a time", len(rows))
        outcome.replayed, outcome.incidents, applied = 0, 0, {}
        for key, entries in groups.items():
            for entry in entries:
                try:
                    with session.begin_nested():
                        applied |= _apply(session, mappings, {key: [entry]}, outcome)
                except OperationalError:
                    raise
                except Exception as exc:
                    with bound(event_id=entry.event_id):
                        log.exception("inbound event could not be applied")
                    failed[entry.event_id] = _reason(exc)
    outcome.failed = len(failed)
    outcome.received = [row.received_at for row in rows if row.id in applied]
    inbox.mark_processed(session, applied, failed, utcnow())
    return outcome


def _entry(row: Pending, event: AlertEvent) -> NewEntry:
    if event.kind is None or event.incident_external_id is None:
        raise ValueError(f"{event.event_type!r} names no incident")  # accepted events always do: a parser bug
    return NewEntry(
        event_id=row.id,
        incident=event.incident_external_id,
        at=event.at or row.received_at,
        kind=event.kind,
        event_key=storable(event.event_id)[:255],
        actor=event.actor,
        text=event.text,
        snapshot=snapshot_json(event.snapshot),
    )


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _apply(
    session: Session, mappings: Mappings, groups: dict[IncidentKey, list[NewEntry]], outcome: Outcome
) -> dict[int, int]:
    """Fold each group into its incident and write it all; the inbound event id → incident id of what went in.

    A new incident is inserted already folded (one write); an existing one, locked first, is updated once.
    """
    if not groups:
        return {}
    for entries in groups.values():
        entries.sort(key=order_key)
    found = _locked(session, list(groups))
    fresh = {key: entries for key, entries in groups.items() if key not in found}
    found |= _create(session, mappings, fresh)
    changed: list[dict[str, Any]] = []
    for key, entries in groups.items():
        if key in fresh:
            continue
        incident = found[key]
        assert incident.id is not None
        progress = _fold(session, incident, entries, outcome)
        values = incidents.settled(mappings, incident.source, incident.external_id, incident.title, progress)
        for name, value in values.items():
            set_committed_value(incident, name, value)  # written below, with the batch's other incidents
        changed.append({"incident_row": incident.id, **values})
    if changed:
        by_id = update(INCIDENT).where(INCIDENT.c.id == bindparam("incident_row"))
        session.execute(by_id.values({name: bindparam(name) for name in changed[0] if name != "incident_row"}), changed)
    new_rows = [e.values(found[key].id or 0) for key, entries in groups.items() for e in entries]
    # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT ("insertmanyvalues") instead of one statement
    # per row: the search index's statement trigger then rewrites a busy incident's document once per batch.
    session.execute(insert(TIMELINE).returning(TIMELINE.c.id), new_rows)
    session.flush()  # the folds rewritten on stored entries, when an event came late
    batch = [found[key] for key in groups]
    recurrences = Recurrences(session, [i.fingerprint for i in batch])
    # The rules judge each whole timeline: read the batch's in one query, not one per incident.
    timelines = incidents.timelines(session, [i.id for i in batch if i.id is not None])
    for incident in batch:
        recurrences.link(incident)
        if triggers.apply_rules(session, mappings, incident, timelines.get(incident.id or 0, [])):
            recurrences.opened(incident)
    session.flush()
    outcome.incidents += len(groups)
    return {e.event_id: found[key].id or 0 for key, entries in groups.items() for e in entries}


def _locked(session: Session, keys: list[IncidentKey]) -> dict[IncidentKey, Incident]:
    """The batch's incidents that exist, locked in id order (two appliers cannot deadlock on them)."""
    query = (
        select(Incident)
        .where(tuple_(Incident.source, Incident.external_id).in_(keys))
        .order_by(Incident.id)  # type: ignore[arg-type]
        .execution_options(populate_existing=True)
    )
    if is_postgres(session):
        query = query.with_for_update()
    return {(i.source, i.external_id): i for i in session.exec(query).all()}


def _create(
    session: Session, mappings: Mappings, fresh: dict[IncidentKey, list[NewEntry]]
) -> dict[IncidentKey, Incident]:
    """Insert the new incidents with their state already folded from their first events, in one statement."""
    if not fresh:
        return {}
    now = utcnow()
    rows = []
    for (source, external_id), entries in sorted(fresh.items()):
        progress = _moved_on(Progress(), entries, refold(Fold(), entries))
        values = incidents.settled(mappings, source, external_id, "", progress)
        rows.append({"source": source, "external_id": external_id, "created_at": now, **values})
    dialect_insert = postgresql.insert if is_postgres(session) else sqlite.insert
    statement = (
        dialect_insert(INCIDENT)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(INCIDENT.c.source, INCIDENT.c.external_id, INCIDENT.c.id)
    )
    ids = {(source, external_id): incident_id for source, external_id, incident_id in session.execute(statement, rows)}
    if len(ids) != len(rows):
        # Only an applier creates incidents, one at a time (the inbox turn); another one got there first anyway.
        raise RuntimeError("an incident of this batch was created concurrently")
    created = {}
    for row in rows:
        key = (row["source"], row["external_id"])
        created[key] = attach_inserted(session, Incident, {**row, "id": ids[key]})
    return created


def _fold(session: Session, incident: Incident, entries: list[NewEntry], outcome: Outcome) -> Progress:
    """Fold new entries (sorted) into an existing incident's progress: on from its newest entry when they are all
    newer, else from the entry just before the oldest of them, rewriting the folds of the stored entries after it."""
    progress = Progress.from_json(incident.progress) if incident.progress else None
    if progress is not None and progress.takes_in_order(entries[0]):
        return _moved_on(progress, entries, refold(progress.fold, entries))
    assert incident.id is not None
    outcome.replayed += 1
    base, stored = _before(session, incident.id, order_key(entries[0])) if progress is not None else (None, [])
    if base is None:  # kept from before folds were stored, or a fold is missing: replay the whole timeline once
        base, stored, progress = Fold(), incidents.timeline(session, incident.id), None
    merged: list[NewEntry | TimelineEntry] = sorted([*stored, *entries], key=order_key)
    folds = refold(base, merged)
    for stored_or_new, fold in zip(merged, folds, strict=True):
        as_json = fold.to_json()
        if stored_or_new.fold != as_json:
            stored_or_new.fold = as_json
            if isinstance(stored_or_new, TimelineEntry):
                session.add(stored_or_new)
    counted = (progress or Progress()).counted(entries if progress is not None else merged)
    return Progress(folds[-1], order_key(merged[-1]), counted.first_at, counted.first_trigger_at, counted.first_ack_at)


def _moved_on(progress: Progress, entries: list[NewEntry], folds: list[Fold]) -> Progress:
    for entry, fold in zip(entries, folds, strict=True):
        entry.fold = fold.to_json()
    counted = progress.counted(entries)
    return Progress(folds[-1], order_key(entries[-1]), counted.first_at, counted.first_trigger_at, counted.first_ack_at)


def _before(session: Session, incident_id: int, point: OrderKey) -> tuple[Fold | None, list[TimelineEntry]]:
    """The fold just before `point` in the incident's timeline, and the stored entries after it (in order).

    Reads the entries from the latest time before the point's on: the one just before it is among them.
    """
    of_incident = TimelineEntry.incident_id == incident_id
    earlier = select(func.max(TimelineEntry.at)).where(of_incident, TimelineEntry.at < point[0]).scalar_subquery()
    query = select(TimelineEntry).where(of_incident, TimelineEntry.at >= func.coalesce(earlier, point[0]))
    rows = sorted(session.exec(query).all(), key=order_key)
    before = [r for r in rows if order_key(r) < point]
    if not before:
        return Fold(), rows
    last = before[-1]
    return (Fold.from_json(last.fold) if last.fold else None), rows[len(before) :]
