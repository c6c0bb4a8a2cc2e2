"""Webhook ingest, the pipeline from an authenticated body to an incident.

1. `classify_alert` parses just enough to know the event's id and whether Aftermath uses it (pure CPU).
2. `GroupCommitter.submit` stores it: many concurrent deliveries share one INSERT and one COMMIT, and each request
   is answered only after the transaction holding its event committed, so a 202 still means "durably stored".
3. `answer` says what the route tells the source (accepted, duplicate, ignored, or the dead letter's reason).
4. Later, off the request path, `apply_pending` folds stored alert events into their incidents.

`busy(engine)` tells a worker in this process whether deliveries are being stored right now, so it can let them
go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from app import inbox, recurrence, triggers
from app.db import transaction, utcnow
from app.inbox import Delivery, DeliveryStatus
from app.incidents import apply_event
from app.mappings import Mappings
from connectors import opsgenie, pagerduty
from connectors.events import AlertEvent, PayloadError

log = logging.getLogger(__name__)
PARSERS: dict[str, Callable[[bytes], AlertEvent]] = {"pagerduty": pagerduty.parse, "opsgenie": opsgenie.parse}
_Item = tuple[Delivery, "asyncio.Future[bool]", asyncio.AbstractEventLoop]


@dataclass(frozen=True)
class Answer:
    """What the webhook route answers once the delivery is stored."""

    status: str  # accepted | duplicate | ignored | rejected
    event_id: str
    detail: str | None = None
    http_status: int = 202


def classify_alert(source: str, body: bytes) -> Delivery:
    """Parse just enough to know the event's id and whether Aftermath uses it; no database work."""
    try:
        event = PARSERS[source](body)
    except PayloadError as exc:
        return dead_letter(source, body, exc)
    if event.ignored:
        return Delivery(source, event.event_id, event.event_type, DeliveryStatus.IGNORED, body)
    return Delivery(source, event.event_id, event.event_type, DeliveryStatus.ACCEPTED, body, pending=True)


def dead_letter(source: str, body: bytes, error: PayloadError) -> Delivery:
    """An unusable body, kept with its reason, so nothing an authenticated source sent is lost."""
    return Delivery(source, inbox.dead_letter_id(body), None, DeliveryStatus.DEAD_LETTER, body, reason=str(error))


def answer(delivery: Delivery, stored: bool) -> Answer:
    if delivery.status == DeliveryStatus.DEAD_LETTER:
        return Answer("rejected", delivery.external_id, delivery.reason, 400 if not _is_json(delivery.body) else 422)
    if not stored:
        return Answer("duplicate", delivery.external_id)
    return Answer(delivery.status, delivery.external_id)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


# -- store: group commit -------------------------------------------------------------------------------------------
def _resolve(answers: list[tuple[asyncio.Future[bool], bool | BaseException]]) -> None:
    for future, value in answers:
        if future.done():
            continue  # the client went away; its event is stored all the same
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)


_RUNNING: list[GroupCommitter] = []


def busy(engine: Engine) -> bool:
    """Whether a committer of this process on this engine is storing deliveries now or is likely to be shortly."""
    return any(c.engine is engine and c.busy() for c in _RUNNING)


class GroupCommitter:
    def __init__(self, engine: Engine, *, max_batch: int = 500, on_commit: Callable[[], None] | None = None) -> None:
        # One thread: a second one committing in parallel on PostgreSQL made smaller batches and lowered throughput.
        self.engine, self.max_batch, self.on_commit = engine, max_batch, on_commit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._in_flight, self._last_commit = False, 0.0

    async def submit(self, delivery: Delivery) -> bool:
        """Store the delivery; True if it was new, False for a redelivery. Raises what the database raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((delivery, future, loop))
        return await future

    def busy(self, quiet: float = 0.02) -> bool:
        """Deliveries queued or a batch not yet committed, or one committed less than `quiet` seconds ago (more are
        likely on their way)."""
        return self._in_flight or not self._queue.empty() or time.monotonic() - self._last_commit < quiet

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aftermath-group-commit", daemon=True)
        self._thread.start()
        _RUNNING.append(self)

    def stop(self) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        if self._thread:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            self._in_flight = True
            # No timer: whatever arrived while the previous commit was running forms the next batch.
            batch, stopping = [first], False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)
            self._in_flight, self._last_commit = False, time.monotonic()
            if stopping:
                return

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with transaction(self.engine) as session:
                stored: list[bool | BaseException] = list(inbox.store_many(session, [d for d, _, _ in batch]))
        except Exception as exc:  # the database is down or refused the batch: every waiting request hears it
            log.warning("group commit of %d events failed: %s", len(batch), type(exc).__name__)
            stored = [exc] * len(batch)
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool | BaseException]]] = {}
        for (_, future, loop), value in zip(batch, stored, strict=True):
            by_loop.setdefault(loop, []).append((future, value))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits for these answers now
                loop.call_soon_threadsafe(_resolve, answers)
        if self.on_commit and not isinstance(stored[0], BaseException):
            self.on_commit()


# -- apply -----------------------------------------------------------------------------------------------------------
def apply_pending(session: Session, mappings: Mappings, limit: int = 200) -> int:
    """Apply stored alert events to their incidents, oldest first; one bad event never blocks the rest."""
    rows = inbox.claim_pending(session, limit)
    for row in rows:
        try:
            with session.begin_nested():
                event = PARSERS[row.source](row.body.encode("utf-8"))
                incident = apply_event(session, mappings, event, row.id or 0, row.received_at)
                recurrence.link_if_recurring(session, incident)
                triggers.apply_rules(session, mappings, incident)
                row.incident_id = incident.id
        except OperationalError:
            # A deadlock with another applier (or the database going away) is transient: the event stays pending and
            # is applied on a later pass, instead of being parked as failed.
            log.warning("inbound event %s not applied this time (transient database error); it stays pending", row.id)
            session.flush()
            return rows.index(row)  # what was applied; 0 lets the caller pause before trying again
        except Exception as exc:  # a parser or domain bug: park the event with the reason instead of looping on it
            log.exception("inbound event %s could not be applied", row.id)
            row.status, row.reason = DeliveryStatus.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        row.processed_at = utcnow()
        session.add(row)
    session.flush()
    return len(rows)
