"""The inbox: every authenticated inbound body, stored raw (in batches) before anything else happens to it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Index, Integer, Text, UniqueConstraint, bindparam, column, update
from sqlalchemy import select as sa_select
from sqlalchemy import values as sa_values
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel

from app.db import EnumText, UTCDateTime, is_postgres, utcnow


class DeliveryStatus(StrEnum):
    ACCEPTED = "accepted"  # an alert event, applied to its incident by the worker (or a tracker event, applied)
    IGNORED = "ignored"  # authenticated, of a type Aftermath does not use: kept, changes nothing
    DEAD_LETTER = "dead_letter"  # authenticated but unusable (not JSON, not the source's shape): kept with its reason
    FAILED = "failed"  # accepted, but applying it raised: kept with the reason instead of retried forever


class InboundEvent(SQLModel, table=True):
    __tablename__ = "inbound_event"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_inbound_event_pending", "processed_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    event_type: str | None = Field(default=None, max_length=128)
    status: DeliveryStatus = Field(sa_type=EnumText(DeliveryStatus, 16))
    reason: str | None = Field(default=None, sa_column=Column(Text))
    body: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)  # null: accepted, not yet applied
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)


@dataclass
class Delivery:
    """One authenticated request body, classified, waiting to be stored."""

    source: str
    external_id: str
    event_type: str | None
    status: DeliveryStatus
    body: bytes
    reason: str | None = None
    pending: bool = False  # an alert event still to be applied to its incident
    received_at: datetime = field(default_factory=utcnow)


def dead_letter_id(body: bytes) -> str:
    """Dead letters have no id of their own; the body's hash keeps redeliveries of the same junk to one row."""
    return "dead:" + hashlib.sha256(body).hexdigest()


def store_many(session: Session, deliveries: list[Delivery]) -> list[bool]:
    """One INSERT … ON CONFLICT DO NOTHING RETURNING for the batch; for each delivery, whether it was new."""
    rows, seen = [], set()
    for d in deliveries:
        key = (d.source, _key(d.external_id))
        if key in seen:
            continue  # the same event twice in one batch: the second is a duplicate
        seen.add(key)
        rows.append(
            {
                "source": d.source,
                "external_id": key[1],
                "event_type": storable(d.event_type or "")[:128] or None,
                "status": d.status,
                "reason": storable(d.reason) if d.reason is not None else None,
                # Decoding with "replace" leaves no surrogates; a raw NUL can only be in a body that is not JSON.
                "body": d.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
                "received_at": d.received_at,
                "processed_at": None if d.pending else d.received_at,
            }
        )
    # Key order: two server processes committing at once (PostgreSQL) then lock the same new keys in the same order
    # and cannot deadlock on a redelivery that sits in both batches.
    rows.sort(key=lambda row: (row["source"], row["external_id"]))
    inserted = _insert_pipelined(session, rows) if is_postgres(session) else _insert_core(session, rows)
    result = []
    for d in deliveries:
        key = (d.source, _key(d.external_id))
        result.append(key in inserted)
        inserted.discard(key)
    return result


def _insert_core(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    # One constant Core statement run with a list of rows: SQLAlchemy compiles it once and sends the rows as
    # multi-row VALUES batches ("insertmanyvalues"); an ORM insert(...).values(rows) was compiled anew for every
    # batch and cost several times as much per event.
    return {(row[0], row[1]) for row in session.execute(_insert_statement(postgres=False), rows)}


_COLUMNS = ("source", "external_id", "event_type", "status", "reason", "body", "received_at", "processed_at")
_PIPELINED = (
    f"INSERT INTO inbound_event ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
    "ON CONFLICT (source, external_id) DO NOTHING RETURNING source, external_id"
)


def _insert_pipelined(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """PostgreSQL: one prepared single-row INSERT sent for every row in pipeline mode (psycopg's executemany), in
    the session's transaction. The committing thread holds the GIL the request handlers need, and this way it renders
    no SQL text and processes no binds per batch, as SQLAlchemy's multi-row VALUES does."""
    driver: Any = session.connection().connection.driver_connection
    params = [tuple(str(row[c]) if c == "status" else row[c] for c in _COLUMNS) for row in rows]
    inserted: set[tuple[str, str]] = set()
    threshold, driver.prepare_threshold = driver.prepare_threshold, 0  # this text is constant: prepare it once
    try:
        with driver.cursor() as cursor:
            cursor.executemany(_PIPELINED, params, returning=True)
            while True:
                inserted.update((source, external_id) for source, external_id in cursor.fetchall())
                if not cursor.nextset():
                    break
    finally:
        driver.prepare_threshold = threshold
    return inserted


def storable(text: str) -> str:
    """The text as both databases can keep it: PostgreSQL refuses NUL characters, and no UTF-8 column takes a lone
    surrogate (JSON can spell both: "\\u0000", "\\ud800"). One such event must not fail the batch it was stored in."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def _key(external_id: str) -> str:
    return storable(external_id)[:255]


def _insert_statement(*, postgres: bool) -> Any:
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if postgres else sqlite.insert
    return (
        insert(table)
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.source, table.c.external_id)
    )


@dataclass(frozen=True)
class Pending:
    """A stored alert event still to be applied, as much of its row as applying needs."""

    id: int
    source: str
    body: str
    received_at: datetime


def claim_pending(session: Session, limit: int) -> list[Pending]:
    """Accepted events not yet applied, oldest first; locked so concurrent workers take different ones."""
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    query = (
        sa_select(table.c.id, table.c.source, table.c.body, table.c.received_at)
        .where(table.c.processed_at.is_(None))
        .order_by(table.c.processed_at, table.c.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return [Pending(*row) for row in session.execute(query)]


def mark_processed(session: Session, applied: dict[int, int], failed: dict[int, str], at: datetime) -> None:
    """Record what became of claimed events: applied to which incident, or failed with which reason."""
    table = InboundEvent.__table__  # type: ignore[attr-defined]
    if applied and is_postgres(session):
        # One statement for the whole batch: a thousand single-row UPDATEs cost a thousand statements even pipelined.
        pairs = sa_values(column("id", Integer), column("incident_id", Integer), name="applied")
        rows = pairs.data(list(applied.items()))
        session.execute(
            update(table).where(table.c.id == rows.c.id).values(incident_id=rows.c.incident_id, processed_at=at)
        )
    elif applied:  # SQLite takes no column names on a VALUES list; its statements cost no round trip anyway
        by_id = update(table).where(table.c.id == bindparam("row_id"))
        session.execute(
            by_id.values(incident_id=bindparam("incident"), processed_at=at),
            [{"row_id": i, "incident": incident} for i, incident in applied.items()],
        )
    if failed:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values(status=DeliveryStatus.FAILED, reason=bindparam("why"), processed_at=at),
            [{"row_id": i, "why": reason} for i, reason in failed.items()],
        )
