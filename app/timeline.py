"""An incident's state from its timeline, in event-time order: folded one entry at a time as events arrive in order,
and replayed only from the point where an older event is inserted. Pure: no database, no clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from app.vocabulary import IncidentStatus
from connectors.events import IncidentSnapshot, TimelineKind

# Equal timestamps are ordered by lifecycle, so a same-millisecond ack and resolve replay sensibly.
_KIND_RANK = {
    TimelineKind.TRIGGERED: 0,
    TimelineKind.REOPENED: 1,
    TimelineKind.ACKNOWLEDGED: 2,
    TimelineKind.UNACKNOWLEDGED: 3,
    TimelineKind.RESOLVED: 9,
}
OrderKey = tuple[datetime, int, str]


class Entry(Protocol):
    """What the fold reads of a timeline entry (the table row, or one about to be written)."""

    at: datetime
    kind: TimelineKind
    event_key: str
    snapshot: dict[str, Any]


def order_key(entry: Entry) -> OrderKey:
    """Event time, then lifecycle rank, then the source's event id: a total order whatever the arrival order."""
    return (entry.at, _KIND_RANK.get(entry.kind, 5), entry.event_key)


@dataclass(frozen=True)
class Fold:
    """The order-dependent part of the state after a prefix of the timeline; kept on every entry, so that an event
    arriving late is folded in from the entry before it instead of from the start."""

    status: IncidentStatus | None = None
    resolved_at: datetime | None = None
    snapshot: IncidentSnapshot = field(default_factory=IncidentSnapshot)

    def step(self, entry: Entry) -> Fold:
        said = snapshot_of(entry)
        added, removed = said.pop("tags_added", None) or (), said.pop("tags_removed", None) or ()
        snapshot = replace(self.snapshot, **{k: v for k, v in said.items() if v is not None})
        if added or removed:  # a change to the set rather than the whole set
            kept = [t for t in snapshot.tags or () if t not in removed]
            snapshot = replace(snapshot, tags=(*kept, *[t for t in added if t not in kept]))
        status, resolved_at = self.status, self.resolved_at
        if entry.kind == TimelineKind.TRIGGERED:
            if status in (None, IncidentStatus.RESOLVED):
                # A second Create for an open alert (a team was added) changes nothing; after a close it re-opens.
                status, resolved_at = IncidentStatus.TRIGGERED, None
        elif entry.kind == TimelineKind.REOPENED:
            status, resolved_at = IncidentStatus.TRIGGERED, None
        elif entry.kind == TimelineKind.ACKNOWLEDGED:
            if status != IncidentStatus.RESOLVED:
                status = IncidentStatus.ACKNOWLEDGED
        elif entry.kind == TimelineKind.UNACKNOWLEDGED and status == IncidentStatus.ACKNOWLEDGED:
            status = IncidentStatus.TRIGGERED
        elif entry.kind == TimelineKind.RESOLVED:
            status, resolved_at = IncidentStatus.RESOLVED, entry.at
        return Fold(status, resolved_at, snapshot)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "resolved_at": _iso(self.resolved_at), "snapshot": snapshot_json(self.snapshot)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fold:
        status = IncidentStatus(data["status"]) if data.get("status") else None
        snapshot = IncidentSnapshot(**_snapshot_fields(data.get("snapshot") or {}))
        return cls(status, _time(data.get("resolved_at")), snapshot)


@dataclass(frozen=True)
class ReplayedState:
    """The incident's fields as its whole timeline says them."""

    status: IncidentStatus
    triggered_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    snapshot: IncidentSnapshot


@dataclass(frozen=True)
class Progress:
    """What an incident keeps of its timeline: the fold after its newest entry, and the figures that do not depend
    on order (earliest entry, first trigger, first acknowledgement: minimums over all entries)."""

    fold: Fold = field(default_factory=Fold)
    last: OrderKey | None = None
    first_at: datetime | None = None
    first_trigger_at: datetime | None = None
    first_ack_at: datetime | None = None

    def takes_in_order(self, entry: Entry) -> bool:
        """Whether the entry comes after every entry folded so far (the common case: fold it on, replay nothing)."""
        return self.last is None or order_key(entry) > self.last

    def counted(self, entries: Iterable[Entry]) -> Progress:
        """The order-free figures with these entries added; the fold and the newest key are left as they are."""
        first, trigger, ack = self.first_at, self.first_trigger_at, self.first_ack_at
        for e in entries:
            first = _earliest(first, e.at)
            if e.kind == TimelineKind.TRIGGERED:
                trigger = _earliest(trigger, e.at)
            elif e.kind == TimelineKind.ACKNOWLEDGED:
                ack = _earliest(ack, e.at)
        return replace(self, first_at=first, first_trigger_at=trigger, first_ack_at=ack)

    def state(self) -> ReplayedState:
        # The trigger was never delivered (or not yet): the source's creation time, else the first thing we saw.
        triggered_at = self.first_trigger_at or self.fold.snapshot.created_at or self.first_at
        status = self.fold.status or IncidentStatus.TRIGGERED
        return ReplayedState(status, triggered_at, self.first_ack_at, self.fold.resolved_at, self.fold.snapshot)

    def to_json(self) -> dict[str, Any]:
        last = None if self.last is None else [_iso(self.last[0]), self.last[1], self.last[2]]
        return {
            "fold": self.fold.to_json(),
            "last": last,
            "first_at": _iso(self.first_at),
            "first_trigger_at": _iso(self.first_trigger_at),
            "first_ack_at": _iso(self.first_ack_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        last = data.get("last")
        return cls(
            fold=Fold.from_json(data["fold"]),
            last=None if not last else (datetime.fromisoformat(last[0]), int(last[1]), str(last[2])),
            first_at=_time(data.get("first_at")),
            first_trigger_at=_time(data.get("first_trigger_at")),
            first_ack_at=_time(data.get("first_ack_at")),
        )


def refold(base: Fold, entries: Sequence[Entry]) -> list[Fold]:
    """The fold after each of `entries` (in order), starting from `base`, the fold before the first of them."""
    folds, fold = [], base
    for entry in entries:
        fold = fold.step(entry)
        folds.append(fold)
    return folds


def replay(entries: Sequence[Entry]) -> ReplayedState:
    """The state after the whole timeline, from scratch; the same whatever the arrival order."""
    ordered = sorted(entries, key=order_key)
    folds = refold(Fold(), ordered)
    progress = Progress(folds[-1] if folds else Fold(), order_key(ordered[-1]) if ordered else None).counted(ordered)
    return progress.state()


def snapshot_of(entry: Entry) -> dict[str, Any]:
    return _snapshot_fields(entry.snapshot)


def snapshot_json(snapshot: IncidentSnapshot) -> dict[str, Any]:
    data = {k: v for k, v in vars(snapshot).items() if v is not None}
    if snapshot.created_at is not None:
        data["created_at"] = snapshot.created_at.isoformat()
    return data


def _snapshot_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if fields.get("created_at"):
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    for key in ("tags", "tags_added", "tags_removed"):  # tuples in the snapshot, lists in JSON
        if isinstance(fields.get(key), list):
            fields[key] = tuple(fields[key])
    return fields


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)
