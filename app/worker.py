"""The worker loop: run due jobs, and the periodic poll and sweeps, on one or many processes sharing the job table."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app import filing, ingest, jobs, notify, tracking
from app.context import Context
from app.db import is_postgres, utcnow

# The job handlers register themselves with app.jobs when their modules are imported.
JOB_MODULES = (filing, notify)

log = logging.getLogger(__name__)
REMINDER_SWEEP_SECONDS = 300.0
# Inbound events applied per transaction: on SQLite a batch holds the only write lock (about 3 ms per event),
# which the next webhook group commit must wait for.
APPLY_BATCH = {"sqlite": 1, "postgresql": 10}
INGEST_SHARE = 2.0  # while webhooks arrive, pause twice as long as the batch took: ingest gets two thirds or more
MAX_PAUSE = 0.25  # the worker still applies at least a batch per quarter second under any load


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
        self._thread: threading.Thread | None = None

    def apply_inbox(self) -> int:
        """Apply every stored, not yet applied alert event to its incident, in short transactions.

        Webhook deliveries come first: while they keep arriving (a group commit during the last batch, deliveries
        queued or being committed in this process, or a commit in the last 20 ms), pause after each batch (see
        _yield_to_ingest). On SQLite an apply transaction holds the write lock that the next group commit waits for;
        in any case applying an event costs far more CPU (and GIL) than storing it. A burst's backlog waits in the
        inbox and is applied at full speed once the burst ends.
        """
        total, engine = 0, self.context.engine
        batch = APPLY_BATCH.get(engine.dialect.name, 10)
        while not self._stop.is_set():
            self.context.inbox_signal.clear()
            started = time.monotonic()
            with self.context.write() as session:
                if not _inbox_turn(session):
                    return total  # another worker is applying the inbox; this one goes on to jobs
                applied = ingest.apply_pending(session, self.context.mappings, batch)
            total += applied
            if applied == 0:
                return total
            if self.context.inbox_signal.is_set() or ingest.busy(engine):
                self._yield_to_ingest(engine, time.monotonic() - started)
        return total

    def _yield_to_ingest(self, engine: Engine, took: float) -> None:
        """Pause INGEST_SHARE times as long as the last batch took, and on while webhooks keep coming, up to
        MAX_PAUSE: during a burst the backlog waits in the inbox, and is applied at full speed when the burst ends."""
        now = time.monotonic()
        until, latest = now + took * INGEST_SHARE, now + MAX_PAUSE
        while not self._stop.is_set() and (now < until or ingest.busy(engine)) and now < latest:
            self._stop.wait(0.002)
            now = time.monotonic()

    def run_job(self) -> bool:
        """Claim and run one job; False when none was ready."""
        return jobs.run_next(self.context, self.id)

    def run_periodic(self) -> None:
        settings = self.context.settings
        with self.context.write() as session:
            poll_due = jobs.due(session, "poll", settings.poll_interval)
            audit_due = poll_due and jobs.due(session, "tracker_audit", settings.poll_interval * tracking.AUDIT_EVERY)
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

    def run_forever(self) -> None:
        log.info("worker %s started", self.id)
        while not self._stop.is_set():
            try:
                self.context.inbox_signal.clear()
                worked = self.apply_inbox() > 0
                worked = self.run_job() or worked
                self.run_periodic()
            except SQLAlchemyError as exc:
                log.warning("worker: database unavailable (%s); retrying", type(exc).__name__)
                worked = False
                self._stop.wait(5)
            if not worked:
                self.context.inbox_signal.wait(self.idle_wait)
        log.info("worker %s stopped", self.id)

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="aftermath-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.context.inbox_signal.set()
        if self._thread:
            self._thread.join(timeout=10)
