"""Actions: the remedies a postmortem commits to, each answering at least one finding and filed in a tracker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, select

from app import jobs, ledger
from app.db import EnumText, PydanticJSON, UTCDateTime, page, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.findings import Finding
from app.incidents import Incident
from app.installation import action_key, installation_id
from app.jobs import JobKind
from app.mappings import Mappings
from app.postmortems import Postmortem, ensure_open, record_revision
from app.vocabulary import (
    CLOSED,
    ActionKind,
    ActionStatus,
    Control,
    LedgerKind,
    LedgerSource,
    Priority,
    TrackerState,
    VerificationState,
)
from connectors.targets import TARGET, Target, TrackerKind

EDITABLE = (
    *("title", "description", "kind", "owner", "due_date", "priority", "success_metric"),
    *("control", "counterfactual"),
)
# What the filed tracker issue shows of an action (its title, body, assignee, due date, priority, backlink): an edit to
# one of these is pushed to the issue. `kind` is not shown there.
ISSUE_FIELDS = (
    *("title", "description", "owner", "due_date", "priority", "success_metric", "finding_ids"),
    *("control", "counterfactual"),
)


class Action(SQLModel, table=True):
    # The list filters page by id (keyset): (filter, id) indexes hand PostgreSQL the rows of one status or owner
    # already in id order. With status alone it walked the whole table by primary key whenever few rows matched
    # (open and overdue: 53 ms over 100,000 actions when none was overdue, 14 ms with (status, id)).
    # owner= matches whatever the case (e-mail addresses are written both ways): owner_key is the owner in lower case.
    # (status, due_date) hands the escalation sweep the open, overdue actions alone, however many are done.
    # escalation_level: the few escalated actions (the overview, ?escalated=true) without reading all of them.
    __table_args__ = (
        Index("ix_action_status_id", "status", "id"),
        Index("ix_action_owner_key_id", "owner_key", "id"),
        Index("ix_action_status_due_date", "status", "due_date"),
        Index("ix_action_verification_state_due", "verification_state", "verification_due"),
        Index("ix_action_escalation_level", "escalation_level"),
    )

    id: int | None = Field(default=None, primary_key=True)
    postmortem_id: int = Field(foreign_key="postmortem.id", index=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str | None = Field(default=None, sa_column=Column(Text))
    kind: ActionKind = Field(default=ActionKind.TECHNICAL, sa_type=EnumText(ActionKind, 32))
    owner: str | None = Field(default=None, max_length=255)
    owner_key: str | None = Field(default=None, max_length=255)
    due_date: date | None = Field(default=None, index=True)
    priority: Priority = Field(default=Priority.MEDIUM, sa_type=EnumText(Priority, 16))
    success_metric: str | None = Field(default=None, sa_column=Column(Text))
    control: Control | None = Field(default=None, sa_type=EnumText(Control, 32))  # the preventive control it adds
    counterfactual: str | None = Field(default=None, sa_column=Column(Text))  # how it would have changed the incident
    target: Target | None = Field(default=None, sa_column=Column(PydanticJSON(TARGET)))
    tracker_kind: TrackerKind | None = Field(default=None, sa_type=EnumText(TrackerKind, 16), index=True)
    tracker_key: str | None = Field(default=None, max_length=255, index=True)
    tracker_url: str | None = Field(default=None, sa_column=Column(Text))
    tracker_id: str | None = Field(default=None, max_length=255)  # the tracker's own id of the issue (GitHub node id)
    # Marks the issue as this action's (label, body marker): unique to the installation, so a lookup adopts no other.
    idempotency_key: str | None = Field(default=None, max_length=255, unique=True)
    # What the tracker did not take ({field, value, message}): the issue was filed without it.
    warnings: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tracker_status: str | None = Field(default=None, max_length=255)
    tracker_state: TrackerState = Field(default=TrackerState.OK, sa_type=EnumText(TrackerState, 16))
    status: ActionStatus = Field(default=ActionStatus.UNFILED, sa_type=EnumText(ActionStatus, 16))
    wont_do_reason: str | None = Field(default=None, sa_column=Column(Text))  # why it will not be done
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    filed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_reminded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The highest step of the escalation ladder taken for the current due date (0: the owner), and when.
    escalation_level: int | None = None
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Whether the fix worked (app/verification.py): none until the action is done. `verification_asked_at` is when the
    # comment asking for the outcome was queued, stamped with it so that no later sweep asks again.
    verification_state: VerificationState | None = Field(default=None, sa_type=EnumText(VerificationState, 16))
    verification_due: date | None = None
    verification_note: str | None = Field(default=None, sa_column=Column(Text))
    verification_asked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionFinding(SQLModel, table=True):
    __tablename__ = "action_finding"
    __table_args__ = (UniqueConstraint("action_id", "finding_id"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True)
    finding_id: int = Field(foreign_key="finding.id", index=True)


def resolve_target(
    mappings: Mappings, session: Session, postmortem: Postmortem, explicit: Target | None
) -> Target | None:
    """The tracker target: the action's own, else the first mapping rule matching the incident's service or team."""
    if explicit is not None:
        return explicit
    incidents = session.exec(select(Incident).where(Incident.postmortem_id == postmortem.id)).all()
    for rule in mappings.trackers.rules:
        for incident in incidents:
            if (rule.service is None or rule.service == incident.service) and (
                rule.team is None or rule.team == incident.team
            ):
                return rule.target
    return mappings.trackers.default


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
    target: Target | None,
    *,
    author: str,
) -> Action:
    """Record the action and, in the same transaction, the job that files it: it cannot be lost in between."""
    assert postmortem.id is not None
    ensure_open(postmortem)
    _check_findings(session, postmortem.id, finding_ids)
    target = resolve_target(mappings, session, postmortem, target)
    kind = TrackerKind(target.kind) if target else None
    action = Action(postmortem_id=postmortem.id, target=target, tracker_kind=kind, **fields)
    action.owner_key = owner_key(action.owner)
    if target is None:
        action.last_error = "no tracker target: the action names none and no mapping in trackers.yaml matches"
    session.add(action)
    session.flush()
    assert action.id is not None
    action.idempotency_key = action_key(installation_id(session), action.id)
    session.add_all([ActionFinding(action_id=action.id, finding_id=fid) for fid in sorted(set(finding_ids))])
    record_revision(session, postmortem, author, {"action_added": {"id": action.id, "title": action.title}})
    if target is not None:
        jobs.enqueue(session, JobKind.FILE_ACTION, action_id=action.id, sort_date=action.due_date)
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
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    ensure_open(postmortem)
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
    action.owner_key = owner_key(action.owner)
    if "due_date" in changes:
        # The ladder counts from the due date: a new one starts it again (the steps taken stay in the ledger).
        action.escalation_level, action.escalated_at = None, None
    action.updated_at = utcnow()
    session.add(action)
    for name, kind in (("owner", LedgerKind.OWNER_CHANGED), ("due_date", LedgerKind.DUE_DATE_CHANGED)):
        if name in changes:
            ledger.append(
                session,
                kind=kind,
                source=LedgerSource.API,
                action_id=action.id,
                postmortem_id=action.postmortem_id,
                details={"from": changes[name]["from"], "to": changes[name]["to"], "by": author},
            )
    record_revision(session, postmortem, author, {"action_changed": {"id": action.id, **changes}})
    session.flush()  # the action's row is written (and, on PostgreSQL, locked) before the job table is looked at
    pushed = sorted(name for name in changes if name in ISSUE_FIELDS)
    if not action.tracker_key and action.status == ActionStatus.UNFILED:
        # A filing that failed for good may succeed now (a new owner, another due date): try again.
        _queue_filing(session, action)
    if action.tracker_key and pushed:
        # After a failed update the issue may lag behind in other fields too: push everything (an empty list).
        queue_issue_update(session, action, [] if action.last_error else pushed)
    return action


def _unfiled(action: Action, doing: str) -> None:
    if action.tracker_key:
        raise Conflict(f"action {action.id} is filed as {action.tracker_key}: {doing} in the tracker instead")
    if action.status != ActionStatus.UNFILED:
        raise Conflict(f"action {action.id} is {action.status}: nothing to file")


def refile(session: Session, action: Action, target: Target | None, *, author: str) -> Action:
    """File an action whose filing failed (or that was never filed) again, optionally to another target.

    Whatever the last attempt left (its error, its warnings) is cleared; the new attempt starts now.
    """
    assert action.id is not None
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    ensure_open(postmortem)
    _unfiled(action, "move it")
    changes: dict[str, Any] = {"refiled": True}
    if target is not None and target != action.target:
        before = action.target.model_dump() if action.target else None
        changes["target"] = {"from": before, "to": target.model_dump()}
        action.target, action.tracker_kind = target, TrackerKind(target.kind)
    if action.target is None:
        raise Invalid("tracker: the action has no target and no mapping in trackers.yaml matches; name one")
    action.last_error, action.warnings, action.updated_at = None, [], utcnow()
    session.add(action)
    record_revision(session, postmortem, author, {"action_changed": {"id": action.id, **changes}})
    session.flush()
    _queue_filing(session, action)
    return action


def _queue_filing(session: Session, action: Action) -> None:
    """A filing job for the action: a new one, or the pending one moved to the action's place in the queue (it reads
    the action when it runs, so it files what the action says by then)."""
    assert action.id is not None
    if not jobs.ensure_queued(session, JobKind.FILE_ACTION, action.id, action.due_date):
        jobs.reorder(session, JobKind.FILE_ACTION, action.id, action.due_date)


def retarget(session: Session, action: Action, target: Target, *, author: str) -> Action:
    """Change where an action not yet filed will be filed (the next filing attempt goes there)."""
    _unfiled(action, "move it")
    return refile(session, action, target, author=author) if target != action.target else action


def cancel(session: Session, action: Action, reason: str, *, author: str) -> Action:
    """An action recorded by mistake, or no longer wanted before it reached a tracker: won't do, with the reason, and
    no tracker issue. A filed action is closed in its tracker instead (its status comes from there)."""
    assert action.id is not None
    _unfiled(action, "close it")
    action.status, action.wont_do_reason, action.closed_at = ActionStatus.WONT_DO, reason, utcnow()
    action.updated_at = utcnow()
    session.add(action)
    jobs.cancel(session, JobKind.FILE_ACTION, action.id)
    ledger.append(
        session,
        kind=LedgerKind.STATUS_CHANGED,
        source=LedgerSource.API,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        from_status=ActionStatus.UNFILED,
        to_status=ActionStatus.WONT_DO,
        details={"reason": reason, "by": author},
    )
    postmortem = session.get(Postmortem, action.postmortem_id)
    assert postmortem is not None
    record_revision(session, postmortem, author, {"action_changed": {"id": action.id, "cancelled": reason}})
    return action


def explain_wont_do(session: Session, action: Action, reason: str | None, *, author: str) -> Action:
    """Why an action that will not be done will not be (closed in the tracker as won't do, or cancelled here)."""
    if action.status != ActionStatus.WONT_DO:
        raise Conflict(f"action {action.id} is {action.status}, not wont_do: there is nothing to explain")
    if reason != action.wont_do_reason:
        changes = {"wont_do_reason": {"from": action.wont_do_reason, "to": reason}}
        action.wont_do_reason, action.updated_at = reason, utcnow()
        session.add(action)
        postmortem = session.get(Postmortem, action.postmortem_id)
        assert postmortem is not None
        record_revision(session, postmortem, author, {"action_changed": {"id": action.id, **changes}})
    return action


def answering(session: Session, finding_id: int) -> list[Action]:
    """The actions that answer this finding."""
    linked = select(ActionFinding.action_id).where(ActionFinding.finding_id == finding_id)
    return list(session.exec(select(Action).where(Action.id.in_(linked)).order_by(Action.id)).all())  # type: ignore[union-attr,arg-type]


def follow_finding(session: Session, finding_id: int) -> None:
    """A finding's text changed: the issues of the filed actions answering it show it (body, backlink title)."""
    for action in answering(session, finding_id):
        if action.tracker_key:
            action.updated_at = utcnow()
            session.add(action)
            session.flush()  # the action's row first: see jobs.enqueue_fields
            queue_issue_update(session, action, ["finding_ids"])


def queue_issue_update(session: Session, action: Action, fields: list[str]) -> None:
    """Queue the job that rewrites the action's tracker issue with the action's `fields` (empty: all of them); the
    caller has written the action's row already (see jobs.enqueue_fields)."""
    assert action.id is not None
    jobs.enqueue_fields(session, JobKind.UPDATE_ISSUE, action.id, fields, action.due_date)


def owner_key(owner: str | None) -> str | None:
    return owner.lower() if owner else None


def is_overdue(action: Action, today: date) -> bool:
    return action.due_date is not None and action.due_date < today and action.status not in CLOSED


@dataclass(frozen=True)
class ActionFilter:
    """Which actions a list shows: the API's list, its CSV export and the /actions page read the same object.

    team and service: actions of a postmortem covering an incident of that team or service (an action has no team of
    its own). Unset fields do not filter."""

    status: tuple[ActionStatus, ...] = ()
    owner: str | None = None
    overdue: bool | None = None
    postmortem_id: int | None = None
    tracker: str | None = None
    finding_id: int | None = None
    escalated: bool | None = None
    team: str | None = None
    service: str | None = None


# The columns a list may be sorted by; id breaks ties, so a page boundary never splits equal values unpredictably.
SORTABLE: dict[str, Any] = {
    "id": Action.id,
    "due_date": Action.due_date,
    "status": Action.status,
    "owner": Action.owner_key,
    "priority": Action.priority,
    "escalation_level": Action.escalation_level,
    "postmortem": Action.postmortem_id,
    "title": Action.title,
}


def filtered(query: Any, where: ActionFilter, today: date) -> Any:
    """`query` (over Action) narrowed to the actions `where` selects."""
    if where.status:
        query = query.where(Action.status.in_(where.status))  # type: ignore[attr-defined]
    if where.owner:
        query = query.where(Action.owner_key == owner_key(where.owner))
    if where.overdue is not None:
        late = (Action.due_date < today) & Action.status.not_in(CLOSED)  # type: ignore[operator,attr-defined]
        # SQL's NOT of a NULL comparison is NULL: an action without a due date is explicitly "not overdue".
        query = query.where(late if where.overdue else (Action.due_date.is_(None) | ~late))  # type: ignore[union-attr]
    if where.postmortem_id is not None:
        query = query.where(Action.postmortem_id == where.postmortem_id)
    if where.tracker:
        query = query.where(Action.tracker_kind == where.tracker)
    if where.finding_id is not None:
        linked = select(ActionFinding.action_id).where(ActionFinding.finding_id == where.finding_id)
        query = query.where(Action.id.in_(linked))  # type: ignore[union-attr]
    if where.escalated is not None:
        # Level 0 is the owner's own nudge at the due date; escalated means someone above was told.
        above = Action.escalation_level >= 1  # type: ignore[operator]
        query = query.where(above if where.escalated else (Action.escalation_level.is_(None) | ~above))  # type: ignore[union-attr]
    if where.team is not None or where.service is not None:
        covered = select(Incident.postmortem_id).where(Incident.postmortem_id.is_not(None))  # type: ignore[union-attr]
        if where.team is not None:
            covered = covered.where(Incident.team == where.team)
        if where.service is not None:
            covered = covered.where(Incident.service == where.service)
        query = query.where(Action.postmortem_id.in_(covered))  # type: ignore[attr-defined]
    return query


def list_page(
    session: Session, where: ActionFilter, *, today: date, after: int | None, limit: int
) -> tuple[list[Action], str | None]:
    """One page of the API's list, in id order (keyset: the cursor is the last id)."""
    return page(session, filtered(select(Action), where, today), Action.id, after, limit)


def sorted_page(
    session: Session, where: ActionFilter, *, today: date, sort: str, descending: bool, offset: int, limit: int
) -> tuple[list[Action], bool]:
    """One page of the list sorted by a SORTABLE column (then id), and whether another page follows.

    Offset paging: people jump between pages of a sorted list, and no total count is taken (one query fewer)."""
    column = SORTABLE[sort]
    order = [column.desc().nulls_last(), Action.id.desc()] if descending else [column.asc().nulls_last(), Action.id]  # type: ignore[union-attr]
    query = filtered(select(Action), where, today).order_by(*order).offset(offset).limit(limit + 1)
    rows = list(session.exec(query).all())
    return rows[:limit], len(rows) > limit


def of_postmortems(session: Session, postmortem_ids: list[int]) -> dict[int, list[Action]]:
    result: dict[int, list[Action]] = {p: [] for p in postmortem_ids}
    if postmortem_ids:
        query = select(Action).where(Action.postmortem_id.in_(postmortem_ids)).order_by(Action.id)  # type: ignore[attr-defined,arg-type]
        for action in session.exec(query).all():
            result[action.postmortem_id].append(action)
    return result
