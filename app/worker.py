"""The worker: three loops, each with its own pacing, so that none waits behind another — the inbox applier (events
into incidents), the job runner (tracker requests) and the periodic tasks (poll, reminders). One or
many worker processes share the inbox and the job table."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app import applier, escalation, filing, ingest, jobs, notify, telemetry, tracking, verification
from app.context import Context
from app.db import is_postgres, utcnow

# The job handlers register themselves with app.jobs when their modules are imported.
JOB_MODULES = (filing, notify)

log = logging.getLogger(__name__)
REMINDER_SWEEP_SECONDS = 300.0
PERIODIC_TICK = 1.0  # how often the periodic loop asks whether a poll or the reminders are due
ERROR_PAUSE = 5.0  # after a database error, before a loop tries again
# Events per apply transaction: large when nothing else wants the database (each batch reads and writes each of its
# incidents once), small while webhooks arrive in this process (on SQLite a batch holds the one write lock that the
# next group commit waits for).
APPLY_BATCH = 500
APPLY_BATCH_UNDER_INGEST = {"sqlite": 10, "postgresql": 50}  # SQLite: a few ms of holding its one write lock
APPLY_IDLE = 0.1  # with nothing to apply and no signal from an ingest in this process, look again this often
INGEST_SHARE = 2.0  # while webhooks arrive, pause twice as long as the batch took: ingest gets two thirds or more
MAX_PAUSE = 0.25  # the applier still applies at least a batch per quarter second under any load


def _inbox_turn(session: Session) -> bool:
    """On PostgreSQL one worker at a time applies the inbox (for the rest of this transaction). Two workers applying
    neighbouring events concurrently lock the same new incidents in different orders and deadlock; the loser's event
    was then parked as failed (the benchmark with two server processes showed it about once per thousand events)."""
    if not is_postgres(session):
        return True  # SQLite: BEGIN IMMEDIATE already made this the only writer
    return bool(session.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('aftermath:inbox'))")).scalar())


class Worker:
    def __init__(self, context: Context, name: str = "worker", idle_wait: float = 0.5) -> None:
        self.context = context
        self.id = f"{socket.gethostname()}:{os.getpid()}:{name}:{uuid.uuid4().hex[:6]}"
        self.idle_wait = idle_wait
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the inbox ---------------------------------------------------------------------------------------------------
    def apply_batch(self, limit: int = APPLY_BATCH) -> int:
        """Apply one batch of stored events in one transaction; the number taken (0: none pending, or another worker
        has the inbox now)."""
        started = time.monotonic()
        with self.context.write() as session:
            if not _inbox_turn(session):
                return 0
            outcome = applier.apply_pending(session, self.context.mappings, limit)
        if outcome.events:
            telemetry.applied(outcome, time.monotonic() - started)
            log.info(
                "applied %d event(s) to %d incident(s) in %.0f ms%s%s",
                outcome.events - outcome.failed,
                outcome.incidents,
                (time.monotonic() - started) * 1000,
                f", {outcome.replayed} replayed from an earlier event" if outcome.replayed else "",
                f", {outcome.failed} failed" if outcome.failed else "",
            )
        return outcome.events

    def apply_inbox(self) -> int:
        """Apply every stored, not yet applied alert event to its incident, batch after batch.

        Webhook deliveries to this process come first: while they keep arriving (a group commit during the last batch,
        deliveries queued or being committed, or a commit in the last 20 ms), batches are small and each is followed by
        a pause (see _yield_to_ingest). A burst's backlog waits in the inbox and is applied at full speed once the
        burst ends. (An applier in a process of its own is paced by the operating system instead: see app/embedded.py.)
        """
        total, engine = 0, self.context.engine
        while not self._stop.is_set():
            self.context.inbox_signal.clear()
            started = time.monotonic()
            small = APPLY_BATCH_UNDER_INGEST.get(engine.dialect.name, 50)
            applied = self.apply_batch(small if ingest.busy(engine) else APPLY_BATCH)
            total += applied
            if applied == 0:
                return total
            if self.context.inbox_signal.is_set() or ingest.busy(engine):
                self._yield_to_ingest(engine, time.monotonic() - started)
        return total

    def _yield_to_ingest(self, engine: Engine, took: float) -> None:
        """Pause INGEST_SHARE times as long as the last batch took, and on while deliveries queue up, up to MAX_PAUSE:
        during a burst the backlog waits in the inbox, and is applied at full speed when the burst ends. A trickle
        is applied as it comes: waiting for it to stop would only let it pile up."""
        now = time.monotonic()
        until, latest = now + took * INGEST_SHARE, now + MAX_PAUSE
        while not self._stop.is_set() and (now < until or ingest.crowded(engine)) and now < latest:
            self._stop.wait(0.002)
            now = time.monotonic()

    # -- jobs and periodic tasks -------------------------------------------------------------------------------------
    def run_job(self) -> bool:
        """Claim and run one job; False when none was ready."""
        return jobs.run_next(self.context, self.id)

    def run_periodic(self) -> None:
        settings = self.context.settings
        with self.context.write() as session:
            poll_due = jobs.due(session, "poll", settings.poll_interval)
            audit_due = poll_due and jobs.due(session, "tracker_audit", settings.poll_interval * tracking.AUDIT_EVERY)
            if jobs.due(session, "escalation", escalation.SWEEP_SECONDS):
                escalation.sweep(session, self.context.mappings, utcnow())
            if jobs.due(session, "verification", verification.SWEEP_SECONDS):
                verification.sweep(session, utcnow())
            if jobs.due(session, "reminders", REMINDER_SWEEP_SECONDS):
                notify.queue_reminders(session, settings.reminder_interval, utcnow())
        if poll_due:
            tracking.poll_all(self.context, audit=audit_due)

    def run_once(self) -> int:
        """Apply the inbox, drain every ready job, run due periodic tasks; for tests and `aftermath worker --once`."""
        count = self.apply_inbox()
        while self.run_job():
            count += 1
        self.run_periodic()
        return count

    # -- the three loops ---------------------------------------------------------------------------------------------
    def _loop(self, name: str, turn: Callable[[], bool], idle: Callable[[], object]) -> None:
        """Run `turn` until stopped; after a turn that found nothing to do, `idle`. A database error pauses the loop,
        a bug in one turn is logged; neither ends it."""
        while not self._stop.is_set():
            try:
                worked = turn()
            except SQLAlchemyError as exc:
                log.warning("worker %s loop: database unavailable (%s); retrying", name, type(exc).__name__)
                self._stop.wait(ERROR_PAUSE)
                continue
            except Exception:
                log.exception("worker %s loop: unexpected error; going on", name)
                self._stop.wait(ERROR_PAUSE)
                continue
            if not worked:
                idle()

    def _wait_for_events(self) -> None:
        self.context.inbox_signal.wait(APPLY_IDLE)
        self.context.inbox_signal.clear()

    def _periodic_turn(self) -> bool:
        self.run_periodic()
        return False

    def loops(self) -> dict[str, Callable[[], None]]:
        """The worker's loops by name, each to run in a thread of its own."""
        return {
            "inbox": lambda: self._loop("inbox", lambda: self.apply_inbox() > 0, self._wait_for_events),
            "jobs": lambda: self._loop("jobs", self.run_job, lambda: self._stop.wait(self.idle_wait)),
            "periodic": lambda: self._loop("periodic", self._periodic_turn, lambda: self._stop.wait(PERIODIC_TICK)),
        }

    def start(self, only: tuple[str, ...] | None = None) -> None:
        """Start the loops (all, or those named) in threads of their own."""
        log.info("worker %s started", self.id)
        for name, run in self.loops().items():
            if only is None or name in only:
                thread = threading.Thread(target=run, name=f"aftermath-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def run_forever(self) -> None:
        self.start()
        while not self._stop.is_set():
            self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self.context.inbox_signal.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        log.info("worker %s stopped", self.id)
