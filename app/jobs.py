"""The one job table: durable work for the worker, claimed with SKIP LOCKED on PostgreSQL, leased, retried."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, Text, and_, or_, update
from sqlmodel import Field, Session, SQLModel, select

from app.db import UTCDateTime, insert_ignoring_conflict, is_postgres, utcnow

LEASE = timedelta(minutes=5)
OUTCOME_UNKNOWN_SINCE = "outcome_unknown_since"  # payload key
MAX_BACKOFF = 3600.0


class Job(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    dedup_key: str | None = Field(default=None, max_length=255, unique=True)
    action_id: int | None = Field(default=None, foreign_key="action.id", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | running | done | failed
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


def enqueue(
    session: Session,
    kind: str,
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


def claim(session: Session, worker_id: str, now: datetime | None = None) -> Job | None:
    """Take the next ready job (or one whose worker's lease ran out) and lease it to this worker."""
    now = now or utcnow()
    ready = or_(
        and_(Job.status == "pending", Job.run_after <= now),  # type: ignore[arg-type]
        and_(Job.status == "running", Job.locked_until < now),  # type: ignore[arg-type,operator]
    )
    query = select(Job).where(ready).order_by(Job.sort_date.is_(None), Job.sort_date, Job.id).limit(1)  # type: ignore[union-attr,arg-type]
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    job = session.exec(query).first()
    if job is None:
        return None
    if job.status == "running":
        mark_outcome_unknown(job, now)  # its worker died mid-job: it may have done the job's effect already
    job.status, job.locked_by, job.locked_until = "running", worker_id, now + LEASE
    job.attempts += 1
    session.add(job)
    session.flush()
    return job


def mark_outcome_unknown(job: Job, now: datetime | None = None) -> None:
    """Remember (once) since when the job's effect may have happened without us knowing."""
    if OUTCOME_UNKNOWN_SINCE not in job.payload:
        job.payload = {**job.payload, OUTCOME_UNKNOWN_SINCE: (now or utcnow()).isoformat()}


def still_mine(session: Session, job_id: int, worker_id: str) -> Job | None:
    """The job, locked, if this worker still holds its lease; None when another worker took it over."""
    query = select(Job).where(Job.id == job_id, Job.locked_by == worker_id, Job.status == "running")
    if is_postgres(session):
        query = query.with_for_update()
    return session.exec(query).first()


def finish(session: Session, job: Job) -> None:
    job.status, job.finished_at, job.locked_by, job.locked_until = "done", utcnow(), None, None
    session.add(job)


def fail(session: Session, job: Job, error: str) -> None:
    job.status, job.finished_at, job.last_error, job.locked_by = "failed", utcnow(), error, None
    session.add(job)


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (2 s, 4 s, … up to an hour), never sooner than the tracker asked."""
    delay = min(MAX_BACKOFF, 2.0 ** min(attempts, 12)) * random.uniform(0.75, 1.0)
    return max(delay, retry_after or 0.0)


def retry(session: Session, job: Job, error: str, delay: float) -> None:
    job.status, job.last_error, job.locked_by, job.locked_until = "pending", error, None, None
    job.run_after = utcnow() + timedelta(seconds=delay)
    session.add(job)


def postpone(session: Session, action_ids: Any, until: datetime) -> int:
    """Make every pending job of these actions (a subquery of action ids) wait until `until`, never less than it
    waited already; returns how many were moved. For a tracker that is down as a whole (see filing)."""
    moved = session.execute(
        update(Job)
        .where(Job.status == "pending", Job.action_id.in_(action_ids), Job.run_after < until)  # type: ignore[union-attr,arg-type]
        .values(run_after=until)
        .execution_options(synchronize_session=False)
    )
    return int(moved.rowcount)  # type: ignore[attr-defined]


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
