"""Postmortems: opened by trigger rules or by hand, edited under optimistic versioning, every change a revision."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, select

from app.db import EnumText, PydanticJSON, UTCDateTime, page, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.incidents import Incident
from app.participants import STORED, Participant
from app.vocabulary import PostmortemStatus

NEXT_STATUSES = {
    PostmortemStatus.DRAFT: {PostmortemStatus.IN_REVIEW},
    PostmortemStatus.IN_REVIEW: {PostmortemStatus.DRAFT, PostmortemStatus.PUBLISHED},
    PostmortemStatus.PUBLISHED: {PostmortemStatus.IN_REVIEW, PostmortemStatus.CLOSED},
    PostmortemStatus.CLOSED: {PostmortemStatus.IN_REVIEW},  # reopened: a revision like any other change
}
UNPUBLISHED = (PostmortemStatus.DRAFT, PostmortemStatus.IN_REVIEW)
EDITABLE = (
    *("title", "status", "owner", "summary", "customer_impact", "impact_start", "impact_end", "review_due"),
    "participants",
)


class Postmortem(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, max_length=32, unique=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    status: PostmortemStatus = Field(default=PostmortemStatus.DRAFT, sa_type=EnumText(PostmortemStatus, 16), index=True)
    owner: str | None = Field(default=None, max_length=255)
    summary: str | None = Field(default=None, sa_column=Column(Text))
    customer_impact: str | None = Field(default=None, sa_column=Column(Text))
    impact_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    impact_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    review_due: date | None = Field(default=None, index=True)
    trigger: str | None = Field(default=None, max_length=128)  # the rule that opened it, or "manual"
    version: int = 1
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    participants: list[Participant] = Field(
        default_factory=list, sa_column=Column(PydanticJSON(STORED), nullable=False)
    )


class PostmortemRevision(SQLModel, table=True):
    __tablename__ = "postmortem_revision"
    __table_args__ = (UniqueConstraint("postmortem_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortem.id", index=True)
    version: int
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    author: str = Field(max_length=255)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")  # as the API writes every other time
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value.isoformat() if isinstance(value, date | datetime) else value


def record_revision(session: Session, postmortem: Postmortem, author: str, changes: dict[str, Any]) -> None:
    """Bump the version and keep who changed what; every write to a postmortem or its children goes through here."""
    assert postmortem.id is not None
    postmortem.version += 1
    postmortem.updated_at = utcnow()
    session.add(postmortem)
    session.add(
        PostmortemRevision(
            postmortem_id=postmortem.id,
            version=postmortem.version,
            author=author,
            changes=json.loads(json.dumps(changes, default=_jsonable)),
        )
    )


def get(session: Session, postmortem_id: int) -> Postmortem:
    postmortem = session.get(Postmortem, postmortem_id)
    if postmortem is None:
        raise NotFound(f"postmortem {postmortem_id} not found")
    return postmortem


def open_for_incident(
    session: Session, incident: Incident, *, author: str, trigger: str, review_due_days: int
) -> tuple[Postmortem, bool]:
    """The incident's postmortem, opened now if it has none; the flag says whether it was created."""
    if incident.postmortem_id is not None:
        return get(session, incident.postmortem_id), False
    now = utcnow()
    postmortem = Postmortem(
        title=incident.title, trigger=trigger, review_due=(now + timedelta(days=review_due_days)).date(), version=1
    )
    session.add(postmortem)
    session.flush()
    assert postmortem.id is not None
    postmortem.key = f"PM-{postmortem.id}"
    incident.postmortem_id = postmortem.id
    session.add_all([postmortem, incident])
    session.add(
        PostmortemRevision(
            postmortem_id=postmortem.id,
            version=1,
            author=author,
            changes={"opened": {"incident_id": incident.id, "trigger": trigger}},
        )
    )
    session.flush()
    return postmortem, True


def ensure_open(postmortem: Postmortem) -> None:
    """A closed postmortem takes no edits, findings or actions until it is reopened."""
    if postmortem.status == PostmortemStatus.CLOSED:
        raise Conflict(f"{postmortem.key} is closed: reopen it first (PATCH status in_review)")


def update(
    session: Session, postmortem: Postmortem, fields: dict[str, Any], *, author: str, expected_version: int | None
) -> Postmortem:
    """Apply a PATCH: fields of EDITABLE and `incident_ids` (the incidents it covers), as one revision."""
    if expected_version is not None and expected_version != postmortem.version:
        raise Conflict(f"postmortem is at version {postmortem.version}, not {expected_version}; reload and retry")
    if "status" in fields and fields["status"] != postmortem.status:
        allowed = NEXT_STATUSES[postmortem.status]
        if fields["status"] not in allowed:
            moves = ", ".join(sorted(allowed)) or "none"
            raise Conflict(f"status cannot go from {postmortem.status} to {fields['status']} (allowed: {moves})")
    changes: dict[str, Any] = {
        name: {"from": _jsonable(getattr(postmortem, name)), "to": _jsonable(fields[name])}
        for name in EDITABLE
        if name in fields and fields[name] != getattr(postmortem, name)
    }
    covered = [i.id for i in incidents_of(session, postmortem.id or 0) if i.id is not None]
    wanted = sorted(set(fields["incident_ids"])) if fields.get("incident_ids") is not None else covered
    if wanted != covered:
        changes["incident_ids"] = {"from": covered, "to": wanted}
    if changes and postmortem.status == PostmortemStatus.CLOSED and "status" not in changes:
        ensure_open(postmortem)
    start, end = fields.get("impact_start", postmortem.impact_start), fields.get("impact_end", postmortem.impact_end)
    if start and end and end < start:
        raise Invalid("impact_end is before impact_start")
    if "incident_ids" in changes:
        _cover(session, postmortem, covered, wanted)
    for name in EDITABLE:
        if name in changes:
            setattr(postmortem, name, fields[name])
    if changes:
        if "status" in changes and postmortem.status == PostmortemStatus.PUBLISHED and postmortem.published_at is None:
            postmortem.published_at = utcnow()
        record_revision(session, postmortem, author, changes)
        session.flush()
    return postmortem


def _cover(session: Session, postmortem: Postmortem, covered: list[int], wanted: list[int]) -> None:
    """Make the postmortem cover exactly `wanted`; an incident of another postmortem must be taken out there first."""
    rows = {i.id: i for i in session.exec(select(Incident).where(Incident.id.in_(wanted))).all()}  # type: ignore[union-attr]
    unknown = sorted(set(wanted) - set(rows))
    if unknown:
        raise Invalid(f"incident_ids: unknown incident(s) {unknown}")
    for incident in rows.values():
        if incident.postmortem_id not in (None, postmortem.id):
            other = session.get(Postmortem, incident.postmortem_id)
            key = other.key if other else f"postmortem {incident.postmortem_id}"
            raise Conflict(f"incident {incident.id} is covered by {key}; take it out there first")
    released = [i for i in session.exec(select(Incident).where(Incident.id.in_(covered))).all() if i.id not in rows]  # type: ignore[union-attr]
    for incident in released:
        incident.postmortem_id = None
    for incident in [*rows.values(), *released]:
        if incident.id in wanted:
            incident.postmortem_id = postmortem.id
        incident.postmortem_by_hand = True  # a person decided; trigger rules no longer open or withdraw one for it
        session.add(incident)
    session.flush()


def open_by_hand(
    session: Session,
    incident: Incident,
    fields: dict[str, Any],
    *,
    author: str,
    review_due_days: int,
    expected_version: int | None,
) -> tuple[Postmortem, bool]:
    """POST /incidents/{id}/postmortem: the incident's postmortem (opened now if it has none) with the body applied
    as a PATCH would apply it; the flag says whether it was created."""
    if fields.get("incident_ids") is not None and incident.id not in fields["incident_ids"]:
        raise Invalid(f"incident_ids must include incident {incident.id}, the one the postmortem is opened for")
    postmortem, created = open_for_incident(
        session, incident, author=author, trigger="manual", review_due_days=review_due_days
    )
    if created:
        incident.postmortem_by_hand = True
        session.add(incident)
    update(session, postmortem, fields, author=author, expected_version=expected_version)
    return postmortem, created


def revisions(
    session: Session, postmortem_id: int, *, after: int | None = None, limit: int = 500
) -> tuple[list[PostmortemRevision], str | None]:
    """One page of the postmortem's revisions, oldest first (ids grow with versions)."""
    query = select(PostmortemRevision).where(PostmortemRevision.postmortem_id == postmortem_id)
    return page(session, query, PostmortemRevision.id, after, limit)


def incidents_of(session: Session, postmortem_id: int) -> list[Incident]:
    query = select(Incident).where(Incident.postmortem_id == postmortem_id).order_by(Incident.id)  # type: ignore[arg-type]
    return list(session.exec(query).all())


def _filtered(query: Any, status: PostmortemStatus | None, overdue: bool | None, today: date) -> Any:
    if status:
        query = query.where(Postmortem.status == status)
    if overdue is not None:
        late = (Postmortem.review_due < today) & Postmortem.status.in_(UNPUBLISHED)  # type: ignore[operator,attr-defined]
        query = query.where(late if overdue else (Postmortem.review_due.is_(None) | ~late))  # type: ignore[union-attr]
    return query


def list_page(
    session: Session,
    *,
    status: PostmortemStatus | None,
    overdue: bool | None,
    today: date,
    after: int | None,
    limit: int,
) -> tuple[list[Postmortem], str | None]:
    return page(session, _filtered(select(Postmortem), status, overdue, today), Postmortem.id, after, limit)


def newest_page(
    session: Session, *, status: PostmortemStatus | None, overdue: bool | None, today: date, offset: int, limit: int
) -> tuple[list[Postmortem], bool]:
    """The list's filters, newest first (for people), a page at a time, and whether another page follows."""
    query = _filtered(select(Postmortem), status, overdue, today)
    ordered = query.order_by(Postmortem.id.desc()).offset(offset).limit(limit + 1)  # type: ignore[union-attr]
    rows: list[Postmortem] = list(session.exec(ordered).all())
    return rows[:limit], len(rows) > limit


def is_overdue(postmortem: Postmortem, today: date) -> bool:
    due = postmortem.review_due
    return due is not None and due < today and postmortem.status in UNPUBLISHED


def incident_ids_of(session: Session, postmortem_ids: list[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {p: [] for p in postmortem_ids}
    if postmortem_ids:
        query = select(Incident.id, Incident.postmortem_id).where(Incident.postmortem_id.in_(postmortem_ids))  # type: ignore[union-attr]
        for incident_id, postmortem_id in session.exec(query.order_by(Incident.id)).all():  # type: ignore[arg-type]
            if incident_id is not None and postmortem_id is not None:
                result[postmortem_id].append(incident_id)
    return result
