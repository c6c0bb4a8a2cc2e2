"""The append-only ledger: one entry per real change to an action, each chained to the previous by SHA-256."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, Session, SQLModel, select

from app.db import EnumText, UTCDateTime, lock_for_chain, page, utcnow
from app.vocabulary import LedgerKind, LedgerSource

GENESIS = "0" * 64


class LedgerEntry(SQLModel, table=True):
    __tablename__ = "ledger_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: LedgerKind = Field(sa_type=EnumText(LedgerKind, 32))
    action_id: int | None = Field(default=None, foreign_key="action.id", index=True)
    postmortem_id: int | None = Field(default=None, foreign_key="postmortem.id", index=True)
    source: LedgerSource = Field(sa_type=EnumText(LedgerSource, 16))
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str | None = Field(default=None, max_length=32)
    tracker_status: str | None = Field(default=None, max_length=255)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


def entry_hash(entry: LedgerEntry) -> str:
    """SHA-256 over a canonical JSON of every field but the hash itself (the id is in it: reordering shows)."""
    fields = {
        "id": entry.id,
        "at": entry.at.isoformat(timespec="microseconds"),
        "kind": entry.kind,
        "action_id": entry.action_id,
        "postmortem_id": entry.postmortem_id,
        "source": entry.source,
        "from_status": entry.from_status,
        "to_status": entry.to_status,
        "tracker_status": entry.tracker_status,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def append(
    session: Session,
    *,
    kind: LedgerKind,
    source: LedgerSource,
    action_id: int | None = None,
    postmortem_id: int | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    tracker_status: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> LedgerEntry:
    """Append one entry at the head of the chain. Serialized per database, so the chain never forks."""
    lock_for_chain(session, "aftermath-ledger")
    last = session.exec(select(LedgerEntry).order_by(LedgerEntry.id.desc()).limit(1)).first()  # type: ignore[union-attr]
    entry = LedgerEntry(
        id=(last.id or 0) + 1 if last else 1,
        at=at or utcnow(),
        kind=kind,
        action_id=action_id,
        postmortem_id=postmortem_id,
        source=source,
        from_status=from_status,
        to_status=to_status,
        tracker_status=tracker_status,
        details=json.loads(json.dumps(details or {}, default=str)),
        prev_hash=last.hash if last else GENESIS,
        hash="",
    )
    entry.hash = entry_hash(entry)
    session.add(entry)
    session.flush()
    return entry


def verify(session: Session, batch: int = 5000) -> tuple[bool, int, int | None, str]:
    """Walk the whole chain in id order; return (ok, entries checked, first bad id, hash of the last good entry).

    Removing entries from the end leaves a valid, shorter chain: only someone who kept an earlier head hash (say,
    a monitor scraping this) can tell. Everything else — a changed, re-hashed or removed entry — breaks the chain.
    """
    prev, count, after = GENESIS, 0, 0
    expected_id = 1
    while True:
        query = select(LedgerEntry).where(LedgerEntry.id > after).order_by(LedgerEntry.id).limit(batch)  # type: ignore[arg-type,operator]
        rows = session.exec(query).all()
        if not rows:
            return True, count, None, prev
        for entry in rows:
            if entry.id != expected_id or entry.prev_hash != prev or entry_hash(entry) != entry.hash:
                return False, count, entry.id, prev
            prev, count, expected_id = entry.hash, count + 1, expected_id + 1
        after = rows[-1].id or 0


def list_page(
    session: Session, *, action_id: int | None, postmortem_id: int | None, after: int | None, limit: int
) -> tuple[list[LedgerEntry], str | None]:
    query = select(LedgerEntry)
    if action_id is not None:
        query = query.where(LedgerEntry.action_id == action_id)
    if postmortem_id is not None:
        query = query.where(LedgerEntry.postmortem_id == postmortem_id)
    return page(session, query, LedgerEntry.id, after, limit)


def of_action(session: Session, action_id: int) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.action_id == action_id).order_by(LedgerEntry.id)  # type: ignore[arg-type]
    return list(session.exec(query).all())
