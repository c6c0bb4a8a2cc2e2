"""A tracker's write budget, shared by every process of the deployment through the database.

GitHub allows about 80 content-creating requests a minute and 500 an hour per token (its secondary limits), counted
over all the deployment's workers and servers. Each write first takes a slot here: slots are spaced so that no
rolling minute or hour holds more than the budget, and the slot is taken under a row lock (PostgreSQL) or the one
write lock (SQLite), so two processes never take the same one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func
from sqlmodel import Field, Session, SQLModel, select

from app.db import UTCDateTime, insert_ignoring_conflict, is_postgres, transaction, utcnow
from connectors.targets import WriteLimits
from connectors.tracker import RetryLater

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Budget:
    per_minute: int
    per_hour: int
    max_wait: float = 20.0  # a longer wait becomes a RetryLater: the job waits in the queue, not a worker thread

    @classmethod
    def under(cls, limits: WriteLimits) -> Budget:
        """A budget with a margin under the tracker's limits, for whatever else the token's owner creates meanwhile
        (and for a write sent a little after its slot)."""
        return cls(per_minute=limits.per_minute * 15 // 16, per_hour=limits.per_hour * 24 // 25)

    @property
    def spacing(self) -> timedelta:
        return timedelta(seconds=60 / self.per_minute)


class WriteBudget(SQLModel, table=True):
    """One row per budget (token and host): the row that writers lock to take a slot."""

    __tablename__ = "write_budget"

    key: str = Field(primary_key=True, max_length=64)


class WriteSlot(SQLModel, table=True):
    """A write taken (or about to be sent, at `at`) under a budget; kept for an hour, which is the longest window."""

    __tablename__ = "write_slot"

    id: int | None = Field(default=None, primary_key=True)
    budget: str = Field(foreign_key="write_budget.key", max_length=64, index=True)
    at: datetime = Field(sa_type=UTCDateTime, index=True)


def budget_key(token: str, url: str) -> str:
    """Budgets are per token and host; the token itself is never stored."""
    return hashlib.sha256(f"{url}\n{token}".encode()).hexdigest()[:64]


def take_slot(session: Session, key: str, budget: Budget, now: datetime) -> datetime:
    """Reserve the earliest slot at or after `now` that keeps every rolling minute and hour within the budget."""
    insert_ignoring_conflict(session, WriteBudget, {"key": key}, ["key"])
    lock = select(WriteBudget).where(WriteBudget.key == key)
    session.exec(lock.with_for_update() if is_postgres(session) else lock).one()
    session.execute(delete(WriteSlot).where(WriteSlot.budget == key, WriteSlot.at < now - HOUR))  # type: ignore[arg-type]
    last = session.exec(select(func.max(WriteSlot.at)).where(WriteSlot.budget == key)).one()
    slot = max(now, last + budget.spacing) if last else now
    # Within the hour before the slot: if the budget is spent, wait until the oldest of those writes leaves it.
    recent = session.exec(
        select(WriteSlot.at).where(WriteSlot.budget == key, WriteSlot.at > slot - HOUR).order_by(WriteSlot.at)  # type: ignore[arg-type]
    ).all()
    if len(recent) >= budget.per_hour:
        slot = max(slot, recent[len(recent) - budget.per_hour] + HOUR)
    session.add(WriteSlot(budget=key, at=slot))
    session.flush()
    return slot


def gate(engine: Engine, key: str, budget: Budget) -> Callable[[], None]:
    """The function a connector calls before each write: it returns when the write may go out."""

    def wait_for_slot() -> None:
        with transaction(engine) as session:
            now = utcnow()
            wait = (take_slot(session, key, budget, now) - now).total_seconds()
            if wait > budget.max_wait:  # raised inside: the slot is rolled back, the write goes back to the queue
                raise RetryLater(f"write budget spent: the next write may go in {wait:.0f}s", retry_after=wait)
        if wait > 0:
            time.sleep(wait)

    return wait_for_slot
