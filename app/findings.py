"""Findings: what a postmortem's analysis established; actions answer them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, Session, SQLModel, select

from app.db import EnumText, UTCDateTime, utcnow
from app.errors import NotFound
from app.postmortems import Postmortem, ensure_open, record_revision
from app.vocabulary import FindingKind

EDITABLE = ("kind", "statement", "evidence", "category", "whys", "accepted_risk")
# What the tracker issues of the actions answering a finding show of it (see app/drafts.py).
SHOWN_IN_ISSUES = frozenset({"kind", "statement"})


class Finding(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortem.id", index=True)
    kind: FindingKind = Field(sa_type=EnumText(FindingKind, 32))
    statement: str = Field(sa_column=Column(Text, nullable=False))
    evidence: str | None = Field(default=None, sa_column=Column(Text))
    category: str | None = Field(default=None, max_length=128, index=True)
    whys: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A decision instead of an action: why the risk is accepted, and who decided. It answers the finding.
    accepted_risk: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def add(session: Session, postmortem: Postmortem, fields: dict[str, Any], *, author: str) -> Finding:
    assert postmortem.id is not None
    ensure_open(postmortem)
    finding = Finding(postmortem_id=postmortem.id, **fields)
    session.add(finding)
    session.flush()
    record_revision(session, postmortem, author, {"finding_added": {"id": finding.id, "kind": finding.kind}})
    return finding


def get(session: Session, finding_id: int) -> Finding:
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise NotFound(f"finding {finding_id} not found")
    return finding


def update(session: Session, finding: Finding, fields: dict[str, Any], *, author: str) -> set[str]:
    """Apply the changes; the names of the fields that changed."""
    postmortem = session.get(Postmortem, finding.postmortem_id)
    assert postmortem is not None
    ensure_open(postmortem)
    changes = {
        name: {"from": getattr(finding, name), "to": fields[name]}
        for name in EDITABLE
        if name in fields and fields[name] != getattr(finding, name)
    }
    if changes:
        for name, change in changes.items():
            setattr(finding, name, change["to"])
        finding.updated_at = utcnow()
        session.add(finding)
        record_revision(session, postmortem, author, {"finding_changed": {"id": finding.id, **changes}})
        session.flush()
    return set(changes)


def of_postmortem(session: Session, postmortem_id: int) -> list[Finding]:
    query = select(Finding).where(Finding.postmortem_id == postmortem_id).order_by(Finding.id)  # type: ignore[arg-type]
    return list(session.exec(query).all())


def of_postmortems(session: Session, postmortem_ids: list[int]) -> dict[int, list[Finding]]:
    result: dict[int, list[Finding]] = {p: [] for p in postmortem_ids}
    if postmortem_ids:
        query = select(Finding).where(Finding.postmortem_id.in_(postmortem_ids)).order_by(Finding.id)  # type: ignore[attr-defined,arg-type]
        for finding in session.exec(query).all():
            result[finding.postmortem_id].append(finding)
    return result
