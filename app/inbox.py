"""The inbox: every authenticated inbound body, stored raw before anything else happens to it."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel

from app.db import UTCDateTime, insert_ignoring_conflict, utcnow


class InboundEvent(SQLModel, table=True):
    __tablename__ = "inbound_event"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    event_type: str | None = Field(default=None, max_length=128)
    status: str = Field(max_length=16)  # accepted | ignored | dead_letter
    reason: str | None = Field(default=None, sa_column=Column(Text))
    body: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_type=UTCDateTime)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)


def dead_letter_id(body: bytes) -> str:
    """Dead letters have no id of their own; the body's hash keeps redeliveries of the same junk to one row."""
    return "dead:" + hashlib.sha256(body).hexdigest()


def store(
    session: Session,
    *,
    source: str,
    external_id: str,
    event_type: str | None,
    status: str,
    body: bytes,
    reason: str | None = None,
    received_at: datetime | None = None,
) -> int | None:
    """Insert the raw event unless (source, external_id) is already stored; return the new row id or None."""
    row = insert_ignoring_conflict(
        session,
        InboundEvent,
        {
            "source": source,
            "external_id": external_id[:255],
            "event_type": (event_type or "")[:128] or None,
            "status": status,
            "reason": reason,
            "body": body.decode("utf-8", errors="replace"),
            "received_at": received_at or utcnow(),
        },
        ["source", "external_id"],
    ).first()
    return None if row is None else int(row[0])
