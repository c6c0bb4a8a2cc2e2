"""Actions: the remedies a postmortem commits to, each answering at least one finding and filed in a tracker."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlalchemy import update as sql_update
from sqlmodel import Field, Session, SQLModel, select

from app import jobs, ledger
from app.db import UTCDateTime, page, utcnow
from app.errors import Invalid, NotFound
from app.findings import Finding
from app.incidents import Incident
from app.jobs import Job
from app.mappings import GitHubTarget, JiraTarget, Mappings
from app.postmortems import Postmortem, record_revision

KINDS = ("technical", "process", "organizational", "monitoring", "test")
PRIORITIES = ("critical", "high", "medium", "low")
STATUSES = ("unfiled", "open", "in_progress", "done", "wont_do")
CLOSED = ("done", "wont_do")
EDITABLE = ("title", "description", "kind", "owner", "due_date", "priority", "success_metric")
# What the filed tracker issue shows of an action (its title, body, assignee, due date, priority, backlink): an edit to
# one of these is pushed to the issue. `kind` is not shown there.
ISSUE_FIELDS = ("title", "description", "owner", "due_date", "priority", "success_metric", "finding_ids")
UPDATE_ISSUE = "update_issue"


class Action(SQLModel, table=True):
    # The list filters page by id (keyset): (filter, id) indexes hand PostgreSQL the rows of one status or owner
    # already in id order. With status alone it walked the whole table by primary key whenever few rows matched
    # (open and overdue: 53 ms over 100,000 actions when none was overdue, 14 ms with (status, id)).
    __table_args__ = (Index("ix_action_status_id", "status", "id"), Index("ix_action_owner_id", "owner", "id"))

    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortem.id", index=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    kind: str = Field(default="technical", max_length=32)
    owner: str | None = Field(default=None, max_length=255)
    due_date: date | None = Field(default=None, index=True)
    priority: str = Field(default="medium", max_length=16)
    success_metric: str | None = Field(default=None, sa_column=Column(Text))
    tracker: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    tracker_kind: str | None = Field(default=None, max_length=16, index=True)
    tracker_key: str | None = Field(default=None, max_length=255, index=True)
    tracker_url: str | None = Field(default=None, sa_column=Column(Text))
    tracker_status: str | None = Field(default=None, max_length=255)
    tracker_state: str = Field(default="ok", max_length=16)  # ok | missing
    status: str = Field(default="unfiled", max_length=16)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    filed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionFinding(SQLModel, table=True):
    __tablename__ = "action_finding"
    __table_args__ = (UniqueConstraint("action_id", "finding_id"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True)
    finding_id: int = Field(foreign_key="finding.id", index=True)


def resolve_target(
    mappings: Mappings, session: Session, postmortem: Postmortem, explicit: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The tracker target: the action's own, else the first mapping rule matching the incident's service or team."""
    if explicit is not None:
        return explicit
    incidents = session.exec(select(Incident).where(Incident.postmortem_id == postmortem.id)).all()
    for rule in mappings.trackers.rules:
        for incident in incidents:
            if (rule.service is None or rule.service == incident.service) and (
                rule.team is None or rule.team == incident.team
            ):
                return rule.target.model_dump()
    default: JiraTarget | GitHubTarget | None = mappings.trackers.default
    return default.model_dump() if default else None


def _check_findings(session: Session, postmortem_id: int, finding_ids: list[int]) -> None:
    if not finding_ids:
        raise Invalid("finding_ids: an action must answer at least one finding")
    found = session.exec(select(Finding.id).where(Finding.id.in_(finding_ids))).all()  # type: ignore[union-attr]
    missing = sorted(set(finding_ids) - set(found))
    if missing:
        raise Invalid(f"finding_ids: unknown finding(s) {missing}")
    foreign = session.exec(
        select(Finding.id).where(Finding.id.in_(finding_ids), Finding.postmortem_id != postmortem_id)  # type: ignore[union-attr]
    ).all()
    if foreign:
        raise Invalid(f"finding_ids: finding(s) {sorted(f for f in foreign if f)} belong to another postmortem")


def add(
    session: Session,
    mappings: Mappings,
    postmortem: Postmortem,
    fields: dict[str, Any],
    finding_ids: list[int],
    tracker: dict[str, Any] | None,
    *,
    author: str,
) -> Action:
    """Record the action and, in the same transaction, the job that files it: it cannot be lost in between."""
    assert postmortem.id is not None
    _check_findings(session, postmortem.id, finding_ids)
    target = resolve_target(mappings, session, postmortem, tracker)
    action = Action(
        postmortem_id=postmortem.id, tracker=target, tracker_kind=target["kind"] if target else None, **fields
    )
    if target is None:
        action.last_error = "no tracker target: the action names none and no mapping in trackers.yaml matches"
    session.add(action)
    session.flush()
    assert action.id is not None
    session.add_all([ActionFinding(action_id=action.id, finding_id=fid) for fid in sorted(set(finding_ids))])
    record_revision(session, postmortem, author, {"action_added": {"id": action.id, "title": action.title}})
    if target is not None:
        jobs.enqueue(session, "file_action", action_id=action.id, sort_date=action.due_date)
    session.flush()
    return action


def get(session: Session, action_id: int) -> Action:
    action = session.get(Action, action_id)
    if action is None:
        raise NotFound(f"action {action_id} not found")
    return action


def finding_ids_of(session: Session, action_ids: list[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = {aid: [] for aid in action_ids}
    if not action_ids:
        return result
    rows = session.exec(
        select(ActionFinding).where(ActionFinding.action_id.in_(action_ids)).order_by(ActionFinding.finding_id)  # type: ignore[attr-defined,arg-type]
    ).all()
    for row in rows:
        result[row.action_id].append(row.finding_id)
    return result


def update(
    session: Session, action: Action, fields: dict[str, Any], finding_ids: list[int] | None, *, author: str
) -> Action:
    assert action.id is not None
    changes: dict[str, Any] = {}
    for name in EDITABLE:
        if name in fields and fields[name] != getattr(action, name):
            changes[name] = {"from": getattr(action, name), "to": fields[name]}
    if finding_ids is not None:
        _check_findings(session, action.postmortem_id, finding_ids)
        current = finding_ids_of(session, [action.id])[action.id]
        if sorted(set(finding_ids)) != current:
            for link in session.exec(select(ActionFinding).where(ActionFinding.action_id == action.id)).all():
                session.delete(link)
            session.flush()
            session.add_all([ActionFinding(action_id=action.id, finding_id=fid) for fid in sorted(set(finding_ids))])
            changes["finding_ids"] = {"from": current, "to": sorted(set(finding_ids))}
    if not changes:
        return action
    for name, change in changes.items():
        if name != "finding_ids":
            setattr(action, name, change["to"])
    action.updated_at = utcnow()
    session.add(action)
    for name, kind in (("owner", "owner_changed"), ("due_date", "due_date_changed")):
        if name in changes:
            ledger.append(
                session,
                kind=kind,
                source="api",
                action_id=action.id,
                postmortem_id=action.postmortem_id,
                details={"from": changes[name]["from"], "to": changes[name]["to"], "by": author},
            )
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    record_revision(session, postmortem, author, {"action_changed": {"id": action.id, **changes}})
    session.flush()  # the action's row is written (and, on PostgreSQL, locked) before the job table is looked at
    pushed = sorted(name for name in changes if name in ISSUE_FIELDS)
    # An unfiled action needs nothing but its place in the queue: its file job reads the action when it runs.
    if "due_date" in changes and not action.tracker_key:
        session.execute(
            sql_update(Job)
            .where(Job.action_id == action.id, Job.kind == "file_action", Job.status == "pending")  # type: ignore[arg-type]
            .values(sort_date=action.due_date)
        )
    if action.tracker_key and pushed:
        # After a failed update the issue may lag behind in other fields too: push everything (an empty list).
        queue_issue_update(session, action, [] if action.last_error else pushed)
    return action


def queue_issue_update(session: Session, action: Action, fields: list[str]) -> None:
    """Queue the job that rewrites the action's tracker issue with the action's `fields` (empty: all of them).

    One pending job per action covers any number of edits: it reads the action when it runs, so a later edit only
    widens the fields it pushes. Two concurrent edits of one action cannot both miss the pending job: the caller has
    already written the action's row, which serializes them (row lock on PostgreSQL, the one writer on SQLite).
    """
    assert action.id is not None
    pending = session.exec(
        select(Job).where(Job.kind == UPDATE_ISSUE, Job.action_id == action.id, Job.status == "pending")
    ).first()
    if pending is not None:
        known = list(pending.payload.get("fields") or [])
        merged = sorted(set(known) | set(fields)) if known and fields else []
        # Only while it is still pending. This UPDATE also locks the row until commit, so no worker can claim the job
        # and read the action before this edit is visible; and one that claimed it first makes rowcount 0, because
        # it may have read the action already: then this edit gets a job of its own.
        moved = session.execute(
            sql_update(Job)
            .where(Job.id == pending.id, Job.status == "pending")  # type: ignore[arg-type]
            .values(payload={"fields": merged})
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            session.expire(pending)
            return
    jobs.enqueue(session, UPDATE_ISSUE, action_id=action.id, payload={"fields": fields}, sort_date=action.due_date)


def is_overdue(action: Action, today: date) -> bool:
    return action.due_date is not None and action.due_date < today and action.status not in CLOSED


def list_page(
    session: Session,
    *,
    status: list[str] | None,
    owner: str | None,
    overdue: bool | None,
    postmortem_id: int | None,
    tracker: str | None,
    finding_id: int | None,
    today: date,
    after: int | None,
    limit: int,
) -> tuple[list[Action], str | None]:
    query = select(Action)
    if status:
        query = query.where(Action.status.in_(status))  # type: ignore[attr-defined]
    if owner:
        query = query.where(Action.owner == owner)
    if overdue is not None:
        late = (Action.due_date < today) & Action.status.not_in(CLOSED)  # type: ignore[operator,attr-defined]
        # SQL's NOT of a NULL comparison is NULL: an action without a due date is explicitly "not overdue".
        query = query.where(late if overdue else (Action.due_date.is_(None) | ~late))  # type: ignore[union-attr]
    if postmortem_id is not None:
        query = query.where(Action.postmortem_id == postmortem_id)
    if tracker:
        query = query.where(Action.tracker_kind == tracker)
    if finding_id is not None:
        linked = select(ActionFinding.action_id).where(ActionFinding.finding_id == finding_id)
        query = query.where(Action.id.in_(linked))  # type: ignore[union-attr]
    return page(session, query, Action.id, after, limit)


def of_postmortems(session: Session, postmortem_ids: list[int]) -> dict[int, list[Action]]:
    result: dict[int, list[Action]] = {p: [] for p in postmortem_ids}
    if postmortem_ids:
        query = select(Action).where(Action.postmortem_id.in_(postmortem_ids)).order_by(Action.id)  # type: ignore[attr-defined,arg-type]
        for action in session.exec(query).all():
            result[action.postmortem_id].append(action)
    return result
