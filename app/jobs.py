"""The one job table and its runner: durable work for the workers, claimed with SKIP LOCKED on PostgreSQL, leased.

Every write to the Job table is in this module. A job kind is one `JobKind` member and one handler registered with
`@handler(kind)`; the runner owns claiming, the lease check and the decision to finish, retry or fail, which it takes
from what the handler returned or the tracker error it raised.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Text, and_, or_, update
from sqlmodel import Field, Session, SQLModel, select

from app import telemetry
from app.db import EnumText, UTCDateTime, insert_ignoring_conflict, is_postgres, utcnow
from app.logs import bound
from connectors.tracker import OutcomeUnknown, PermanentError, RetryLater, TrackerError

if TYPE_CHECKING:
    from app.context import Context

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)
OUTCOME_UNKNOWN_SINCE = "outcome_unknown_since"  # payload key
MAX_BACKOFF = 3600.0


class JobKind(StrEnum):
    FILE_ACTION = "file_action"
    UPDATE_ISSUE = "update_issue"
    COMMENT = "comment"
    ESCALATE = "escalate"  # one step of the escalation ladder: its comment (app/escalation.py)
    WONT_DO_REASON = "wont_do_reason"  # read why an issue was closed as won't do (app/tracking.py)


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # no longer wanted (its action was cancelled before it ran)


class Job(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: JobKind = Field(sa_type=EnumText(JobKind, 32))
    dedup_key: str | None = Field(default=None, max_length=255, unique=True)
    action_id: int | None = Field(default=None, foreign_key="action.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: JobStatus = Field(default=JobStatus.PENDING, sa_type=EnumText(JobStatus, 16))
    sort_date: date | None = None  # the action's due date: work that is due sooner goes first
    attempts: int = 0
    run_after: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    locked_by: str | None = Field(default=None, max_length=64)
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Schedule(SQLModel, table=True):
    """Periodic tasks (poll, sweeps): whoever moves next_run_at forward owns this run, on any number of workers."""

    name: str = Field(primary_key=True, max_length=64)
    next_run_at: datetime = Field(sa_type=UTCDateTime)


# -- what a handler answers ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Done:
    """The job's work happened; `record` writes what that means, in the runner's transaction, if the lease held."""

    record: Callable[[Session, Job], None] | None = None


@dataclass(frozen=True)
class Later:
    """Not now, and not a failure: run the job again in `seconds`."""

    seconds: float
    reason: str


Outcome = Done | Later
Run = Callable[["Context", Job], Outcome]
# Called in the runner's transaction after a tracker error; `final` is True when the job failed for good.
OnError = Callable[[Session, Job, TrackerError, bool], None]


@dataclass(frozen=True)
class Handler:
    run: Run
    on_error: OnError | None


HANDLERS: dict[JobKind, Handler] = {}


def handler(kind: JobKind, *, on_error: OnError | None = None) -> Callable[[Run], Run]:
    """Register the function that does jobs of this kind (outside any transaction: it talks to trackers).

    It returns Done or Later, or raises a TrackerError: RetryLater (and its kinds) is retried with backoff, never
    sooner than the tracker asked; any other TrackerError fails the job for good.
    """

    def register(run: Run) -> Run:
        HANDLERS[kind] = Handler(run, on_error)
        return run

    return register


# -- queue -----------------------------------------------------------------------------------------------------------
def enqueue(
    session: Session,
    kind: JobKind,
    *,
    action_id: int | None = None,
    payload: dict[str, Any] | None = None,
    dedup_key: str | None = None,
    sort_date: date | None = None,
) -> Job | None:
    """Queue a job in the caller's transaction; with a dedup_key already queued, queue nothing."""
    if dedup_key and session.exec(select(Job.id).where(Job.dedup_key == dedup_key)).first() is not None:
        return None
    job = Job(kind=kind, action_id=action_id, payload=payload or {}, dedup_key=dedup_key, sort_date=sort_date)
    session.add(job)
    session.flush()
    return job


def enqueue_fields(session: Session, kind: JobKind, action_id: int, fields: list[str], sort_date: date | None) -> None:
    """Queue a job of `kind` for the action's `fields` (empty: all of them), or widen the one already pending.

    One pending job per action covers any number of edits, because it reads the action when it runs. The caller must
    have written the action's row first: that serializes two concurrent edits of one action (row lock on PostgreSQL,
    the one writer on SQLite), so they cannot both miss the pending job.
    """
    pending = session.exec(
        select(Job).where(Job.kind == kind, Job.action_id == action_id, Job.status == JobStatus.PENDING)
    ).first()
    if pending is not None:
        known = list(pending.payload.get("fields") or [])
        merged = sorted(set(known) | set(fields)) if known and fields else []
        # Only while it is still pending. This UPDATE also locks the row until commit, so no worker can claim the job
        # and read the action before this edit is visible; and one that claimed it first makes rowcount 0, because
        # it may have read the action already: then this edit gets a job of its own.
        moved = session.execute(
            update(Job)
            .where(Job.id == pending.id, Job.status == JobStatus.PENDING)  # type: ignore[arg-type]
            .values(payload={"fields": merged})
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            session.expire(pending)
            return
    enqueue(session, kind, action_id=action_id, payload={"fields": fields}, sort_date=sort_date)


def ensure_queued(session: Session, kind: JobKind, action_id: int, sort_date: date | None) -> bool:
    """Queue a job of `kind` for the action unless one is pending or running already (one that failed for good is
    history: this makes a new attempt); True when one was queued."""
    live = (JobStatus.PENDING, JobStatus.RUNNING)
    query = select(Job.id).where(Job.kind == kind, Job.action_id == action_id, Job.status.in_(live))  # type: ignore[attr-defined]
    if session.exec(query).first() is not None:
        return False
    enqueue(session, kind, action_id=action_id, sort_date=sort_date)
    return True


def cancel(session: Session, kind: JobKind, action_id: int) -> int:
    """Cancel the action's pending jobs of `kind`; one already running finishes (its worker cannot be stopped)."""
    moved = session.execute(
        update(Job)
        .where(Job.action_id == action_id, Job.kind == kind, Job.status == JobStatus.PENDING)  # type: ignore[arg-type]
        .values(status=JobStatus.CANCELLED, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


def reorder(session: Session, kind: JobKind, action_id: int, sort_date: date | None) -> None:
    """Move the action's pending jobs of this kind to their new place in the queue (a due date changed)."""
    session.execute(
        update(Job)
        .where(Job.action_id == action_id, Job.kind == kind, Job.status == JobStatus.PENDING)  # type: ignore[arg-type]
        .values(sort_date=sort_date)
    )


def postpone(session: Session, action_ids: Any, until: datetime) -> int:
    """Make every pending job of these actions (a subquery of action ids) wait until `until`, never less than it
    waited already; returns how many were moved. For a tracker that is down as a whole."""
    moved = session.execute(
        update(Job)
        .where(Job.status == JobStatus.PENDING, Job.action_id.in_(action_ids), Job.run_after < until)  # type: ignore[union-attr,arg-type]
        .values(run_after=until)
        .execution_options(synchronize_session=False)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


def claim(session: Session, worker_id: str, now: datetime | None = None) -> Job | None:
    """Take the next ready job (or one whose worker's lease ran out) and lease it to this worker."""
    now = now or utcnow()
    ready = or_(
        and_(Job.status == JobStatus.PENDING, Job.run_after <= now),  # type: ignore[arg-type]
        and_(Job.status == JobStatus.RUNNING, Job.locked_until < now),  # type: ignore[arg-type,operator]
    )
    query = select(Job).where(ready).order_by(Job.sort_date.is_(None), Job.sort_date, Job.id).limit(1)  # type: ignore[union-attr,arg-type]
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    job = session.exec(query).first()
    if job is None:
        return None
    if job.status == JobStatus.RUNNING:
        _mark_outcome_unknown(job, now)  # its worker died mid-job: it may have done the job's effect already
    job.status, job.locked_by, job.locked_until = JobStatus.RUNNING, worker_id, now + LEASE
    job.attempts += 1
    session.add(job)
    session.flush()
    return job


def outcome_unknown_since(job: Job) -> datetime | None:
    """Since when the job's effect may have happened without us knowing (an answer lost, a worker gone)."""
    since = job.payload.get(OUTCOME_UNKNOWN_SINCE)
    return datetime.fromisoformat(str(since)) if since else None


def _mark_outcome_unknown(job: Job, now: datetime | None = None) -> None:
    if OUTCOME_UNKNOWN_SINCE not in job.payload:
        job.payload = {**job.payload, OUTCOME_UNKNOWN_SINCE: (now or utcnow()).isoformat()}


def still_mine(session: Session, job_id: int, worker_id: str) -> Job | None:
    """The job, locked, if this worker still holds its lease; None when another worker took it over."""
    query = select(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == JobStatus.RUNNING)
    if is_postgres(session):
        query = query.with_for_update()
    return session.exec(query).first()


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (2 s, 4 s, … up to an hour), never sooner than the tracker asked."""
    delay = min(MAX_BACKOFF, 2.0 ** min(attempts, 12)) * random.uniform(0.75, 1.0)
    return max(delay, retry_after or 0.0)


def _finish(session: Session, job: Job) -> None:
    job.status, job.finished_at, job.locked_by, job.locked_until = JobStatus.DONE, utcnow(), None, None
    session.add(job)


def _fail(session: Session, job: Job, error: str) -> None:
    job.status, job.finished_at, job.last_error, job.locked_by = JobStatus.FAILED, utcnow(), error, None
    session.add(job)


def _retry(session: Session, job: Job, error: str, delay: float) -> None:
    job.status, job.last_error, job.locked_by, job.locked_until = JobStatus.PENDING, error, None, None
    job.run_after = utcnow() + timedelta(seconds=delay)
    session.add(job)


# -- runner ----------------------------------------------------------------------------------------------------------
def run_next(context: Context, worker_id: str) -> bool:
    """Claim one ready job, run its handler, record the outcome while the lease holds; False when none was ready."""
    with context.write() as session:
        job = claim(session, worker_id)
    if job is None:
        return False
    assert job.id is not None
    with bound(job_id=job.id, action_id=job.action_id):
        _run(context, job, worker_id)
    return True


def _run(context: Context, job: Job, worker_id: str) -> None:
    assert job.id is not None
    registered = HANDLERS.get(job.kind)  # read back as a plain string, which hashes like its member
    outcome: Outcome | None = None
    error: TrackerError | None = None
    try:
        if registered is None:
            raise PermanentError(f"no handler for job kind {job.kind!r}")
        outcome = registered.run(context, job)
    except TrackerError as exc:
        error = exc
    except Exception:
        # A bug in one job must not stop the loop; the lease runs out and the job is retried later.
        log.exception("job %s (%s) crashed", job.id, job.kind)
        telemetry.JOBS.labels(job.kind, "crashed").inc()
        return
    if error is None:
        telemetry.TRACKER_CALLS.labels(job.kind, "ok").inc()
    with context.write() as session:
        mine = still_mine(session, job.id, worker_id)
        if mine is None:
            telemetry.JOBS.labels(job.kind, "lost").inc()
            return  # another worker took the job over (lease ran out); it does the job itself
        if error is not None:
            _settle_error(session, mine, error, registered)
        elif isinstance(outcome, Later):
            _retry(session, mine, outcome.reason, outcome.seconds)
            telemetry.JOBS.labels(job.kind, "later").inc()
        else:
            assert isinstance(outcome, Done)
            if outcome.record is not None:
                outcome.record(session, mine)
            _finish(session, mine)
            telemetry.JOBS.labels(job.kind, "done").inc()


def _settle_error(session: Session, job: Job, error: TrackerError, registered: Handler | None) -> None:
    final = not isinstance(error, RetryLater)
    what = f"job {job.id} ({job.kind}, action {job.action_id})"
    if final:
        log.warning("%s failed for good: %s", what, error.message)
        _fail(session, job, error.message)
        telemetry.TRACKER_CALLS.labels(job.kind, "failed").inc()
        telemetry.JOBS.labels(job.kind, "failed").inc()
        if job.kind == JobKind.FILE_ACTION:
            telemetry.FILING_FAILURES.inc()
    else:
        assert isinstance(error, RetryLater)
        if isinstance(error, OutcomeUnknown):
            _mark_outcome_unknown(job)
        delay = backoff(job.attempts, error.retry_after)
        note = " (the effect may have happened; the handler checks first)" if isinstance(error, OutcomeUnknown) else ""
        log.info("%s: %s; retry in %.0fs%s", what, error.message, delay, note)
        _retry(session, job, error.message, delay)
        telemetry.TRACKER_CALLS.labels(job.kind, "retry_later").inc()
        telemetry.RETRY_LATER.labels(job.kind).observe(delay)
        telemetry.JOBS.labels(job.kind, "retry").inc()
    if registered is not None and registered.on_error is not None:
        registered.on_error(session, job, error, final)


def due(session: Session, name: str, interval: float, now: datetime | None = None) -> bool:
    """True for exactly one caller per interval across all workers: the one whose UPDATE moved next_run_at."""
    now = now or utcnow()
    insert_ignoring_conflict(session, Schedule, {"name": name, "next_run_at": now}, ["name"])
    moved = session.execute(
        update(Schedule)
        .where(Schedule.name == name, Schedule.next_run_at <= now)  # type: ignore[arg-type]
        .values(next_run_at=now + timedelta(seconds=interval))
    )
    return bool(moved.rowcount)  # type: ignore[attr-defined]
