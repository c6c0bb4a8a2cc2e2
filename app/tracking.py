"""Status back from the trackers: normalize by category, write one ledger entry per real change, and read why an issue
was closed as won't do (its resolution and the latest comment) into the action's reason."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlmodel import Field, Session, SQLModel, select

from app import actions, jobs, ledger, telemetry, verification
from app.actions import Action
from app.context import Context
from app.db import UTCDateTime, utcnow
from app.jobs import Done, Job, JobKind, Outcome
from app.logs import bound
from app.mappings import Mappings
from app.vocabulary import CLOSED, ActionStatus, LedgerKind, LedgerSource, TrackerState
from connectors.tracker import Comment, IssueState, PermanentError, PollResult, RetryLater, TrackerError

log = logging.getLogger(__name__)
RECENTLY_CLOSED = timedelta(days=30)  # closed issues stay polled this long, so a reopen is still seen
REASON_MAX = 2000  # characters of the closing comment kept as the reason
TRACKER_AUTHOR = "tracker"  # the author of a revision made from what the tracker said
AUDIT_EVERY = 6  # polls between audits: a deletion is noticed within six poll intervals


class PollCursor(SQLModel, table=True):
    """Per tracker target (by its name), the connector's opaque cursor (since + ETag, where the tracker has one)."""

    __tablename__ = "poll_cursor"

    target: str = Field(primary_key=True, max_length=255)
    cursor: str | None = Field(default=None, max_length=2000)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def apply_state(
    session: Session,
    mappings: Mappings,
    action: Action,
    state: IssueState,
    source: LedgerSource,
    at: datetime | None = None,
) -> bool:
    """Record the tracker's state on the action; a ledger entry only when the normalized or raw status moved."""
    assert action.id is not None and action.tracker_kind is not None
    new_status = mappings.status_of(action.tracker_kind, state)
    changed = False
    if state.moved_to and state.moved_to != action.tracker_key:
        ledger.append(
            session,
            kind=LedgerKind.TRACKER_MOVED,
            source=source,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            details={"from": action.tracker_key, "to": state.moved_to},
        )
        action.tracker_key, changed = state.moved_to, True
    if action.tracker_state != TrackerState.OK:
        action.tracker_state, changed = TrackerState.OK, True
    if state.tracker_id and state.tracker_id != action.tracker_id:  # learnt for actions filed before it was kept
        action.tracker_id, changed = state.tracker_id, True
    # The first raw status seen after filing is no change (the issue was filed "open"); later raw moves are.
    raw_moved = action.tracker_status is not None and state.raw_status != action.tracker_status
    if new_status != action.status or raw_moved:
        reopened = action.status in CLOSED and new_status not in CLOSED
        kind = LedgerKind.REOPENED if reopened else LedgerKind.STATUS_CHANGED
        ledger.append(
            session,
            kind=kind,
            source=source,
            action_id=action.id,
            postmortem_id=action.postmortem_id,
            from_status=action.status,
            to_status=new_status,
            tracker_status=state.raw_status,
            details={"key": action.tracker_key, "resolution": state.resolution},
            at=at,
        )
        if new_status in CLOSED and action.status not in CLOSED:
            action.closed_at = at or utcnow()
        elif new_status not in CLOSED:
            action.closed_at = None
        verification.follow_status(mappings, action, action.status, new_status, at or utcnow())
        if new_status == ActionStatus.WONT_DO and action.status != ActionStatus.WONT_DO and not action.wont_do_reason:
            # Reading the closing comment is a tracker request: a job does it, outside this transaction.
            reason = {"resolution": state.resolution, "status": state.raw_status}
            jobs.enqueue(session, JobKind.WONT_DO_REASON, action_id=action.id, payload=reason)
        action.status, changed = new_status, True
    if state.raw_status != action.tracker_status:
        action.tracker_status, changed = state.raw_status, True
    if changed:
        action.updated_at = utcnow()
        session.add(action)
    return changed


def mark_missing(session: Session, action: Action, source: LedgerSource) -> bool:
    if action.tracker_state == TrackerState.MISSING:
        return False
    action.tracker_state, action.updated_at = TrackerState.MISSING, utcnow()
    session.add(action)
    ledger.append(
        session,
        kind=LedgerKind.TRACKER_MISSING,
        source=source,
        action_id=action.id,
        postmortem_id=action.postmortem_id,
        details={"key": action.tracker_key},
    )
    return True


def pollable(session: Session, now: datetime) -> list[Action]:
    query = select(Action).where(
        Action.tracker_key.is_not(None),  # type: ignore[union-attr]
        (Action.status.not_in(CLOSED)) | (Action.closed_at >= now - RECENTLY_CLOSED),  # type: ignore[attr-defined,operator]
    )
    return list(session.exec(query.order_by(Action.id)).all())  # type: ignore[arg-type]


def poll_all(context: Context, *, audit: bool = False) -> int:
    """One poll cycle over every target; returns the number of actions whose status changed.

    With `audit`, each target's tracker is also asked what its poll cannot see (issues deleted or moved without a
    trace in the listing): the worker does that every AUDIT_EVERY polls.
    """
    with telemetry.POLL_SECONDS.time():
        return _poll_all(context, audit)


def _poll_all(context: Context, audit: bool) -> int:
    with context.read() as session:
        by_target: dict[str, list[Action]] = defaultdict(list)
        for action in pollable(session, utcnow()):
            if action.target is not None:
                by_target[action.target.name].append(action)
        cursors = {c.target: c.cursor for c in session.exec(select(PollCursor)).all()}
    changed = 0
    for key, group in by_target.items():
        target = group[0].target
        tracker = context.tracker(target.kind) if target else None
        if target is None or tracker is None:
            continue
        keys = [a.tracker_key for a in group if a.tracker_key]
        try:
            with bound(target=key):
                result = tracker.poll(target, keys, cursors.get(key))
                if audit and (ids := {a.tracker_key: a.tracker_id for a in group if a.tracker_key and a.tracker_id}):
                    found = tracker.audit(target, ids)
                    states = {**result.states, **found.states}
                    result = PollResult(states, result.cursor, tuple(sorted({*result.missing, *found.missing})))
        except TrackerError as exc:
            with bound(target=key):
                log.warning("poll of %s failed: %s", key, exc.message)
            telemetry.TRACKER_CALLS.labels("poll", "retry_later" if isinstance(exc, RetryLater) else "failed").inc()
            telemetry.POLL_ERRORS.labels(target.kind).inc()
            continue
        telemetry.TRACKER_CALLS.labels("poll", "ok").inc()
        with context.write() as session:
            for action in group:
                fresh = session.get(Action, action.id)
                if fresh is None or fresh.tracker_key is None:
                    continue
                state = result.states.get(fresh.tracker_key)
                if state is not None:
                    changed += apply_state(session, context.mappings, fresh, state, LedgerSource.POLL)
                elif fresh.tracker_key in result.missing:
                    mark_missing(session, fresh, LedgerSource.POLL)
            if result.cursor != cursors.get(key):
                row = session.get(PollCursor, key) or PollCursor(target=key)
                row.cursor, row.updated_at = result.cursor, utcnow()
                session.add(row)
    return changed


def closing_reason(resolution: str | None, status: str | None, comment: Comment | None) -> str:
    """Why the tracker says an issue will not be done: its resolution (Jira) or state reason (GitHub), with the latest
    comment someone wrote there."""
    said = (resolution or status or "closed as won't do").replace("_", " ")
    if comment is None or not comment.text.strip():
        return f"{said} (closed in the tracker, no comment)"
    by = f" ({comment.author})" if comment.author else ""
    return f"{said}: {comment.text.strip()}"[:REASON_MAX] + by


@jobs.handler(JobKind.WONT_DO_REASON)
def read_wont_do_reason(context: Context, job: Job) -> Outcome:
    """Take the reason from the tracker, unless someone gave one meanwhile or the action is no longer won't do."""
    assert job.action_id is not None
    with context.read() as session:
        action = session.get(Action, job.action_id)
    if action is None or action.status != ActionStatus.WONT_DO or action.wont_do_reason or not action.tracker_key:
        return Done()
    tracker = context.tracker(action.tracker_kind) if action.tracker_kind else None
    if tracker is None:
        raise PermanentError(f"{action.tracker_kind} is not configured: set its AFTERMATH_* connection settings")
    comment = tracker.latest_comment(action.tracker_key)
    payload = job.payload
    reason = closing_reason(payload.get("resolution"), payload.get("status"), comment)
    return Done(lambda session, _job: _record_reason(session, job.action_id or 0, reason))


def _record_reason(session: Session, action_id: int, reason: str) -> None:
    action = session.get(Action, action_id)
    if action is not None and action.status == ActionStatus.WONT_DO and not action.wont_do_reason:
        actions.explain_wont_do(session, action, reason, author=TRACKER_AUTHOR)
