"""Webhook ingest, the pipeline from an authenticated body to an incident.

1. `classify_alert` parses just enough to know the event's id and whether Aftermath uses it (pure CPU).
2. `GroupCommitter.submit` stores it: many concurrent deliveries share one INSERT and one COMMIT, and each request
   is answered only after the transaction holding its event committed, so a 202 still means "durably stored".
3. `answer` says what the route tells the source (accepted, duplicate, ignored, or the dead letter's reason).
4. Later, off the request path, app/applier.py folds stored alert events into their incidents.

`busy(engine)` tells a worker whether deliveries are being stored right now, so it can let them go first: in this
process, or in any process of the same `aftermath serve` (a shared pulse).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import mmap
import os
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from app import inbox
from app.db import make_engine, transaction
from app.inbox import Delivery, DeliveryStatus
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
PULSE_VARIABLE = "AFTERMATH_INGEST_PULSE"  # set by `aftermath serve` for its processes; not a setting
QUIET = 0.02  # seconds without a commit after which ingest counts as idle (more deliveries are likely until then)
CROWD = 8  # deliveries in one commit: they were waiting for each other, a storm rather than a trickle


class Pulse:
    """When the latest group commit ended, in a small memory-mapped file that every process of one server shares: the
    server's processes write it, the embedded worker's process reads it (the clock is the system-wide monotonic one)."""

    def __init__(self, path: str) -> None:
        with open(path, "a+b") as file:
            if os.fstat(file.fileno()).st_size < 16:
                file.write(b"\0" * 16)
                file.flush()
            self._map = mmap.mmap(file.fileno(), 16)

    def beat(self, size: int) -> None:
        struct.pack_into("dd", self._map, 0, time.monotonic(), float(size))

    def read(self) -> tuple[float, int]:
        """Seconds since the latest commit, and how many deliveries it stored."""
        at, size = struct.unpack_from("dd", self._map, 0)
        return time.monotonic() - float(at), int(size)


@functools.cache
def shared_pulse() -> Pulse | None:
    path = os.environ.get(PULSE_VARIABLE)
    return Pulse(path) if path else None


def busy(engine: Engine) -> bool:
    """Whether deliveries are being stored now or are likely to be shortly: by a committer of this process on this
    engine, or by any process of the same server (through the shared pulse)."""
    if any(c.engine is engine and c.busy() for c in _RUNNING):
        return True
    pulse = shared_pulse()
    return pulse is not None and pulse.read()[0] < QUIET


def crowded(engine: Engine) -> bool:
    """Whether deliveries are queueing up (a storm): the worker then waits for them; a trickle it does not."""
    if any(c.engine is engine and c.crowded() for c in _RUNNING):
        return True
    pulse = shared_pulse()
    if pulse is None:
        return False
    idle, size = pulse.read()
    return idle < QUIET and size >= CROWD


class GroupCommitter:
    def __init__(self, engine: Engine, *, max_batch: int = 500, on_commit: Callable[[], None] | None = None) -> None:
        # One thread: a second one committing in parallel on PostgreSQL made smaller batches and lowered throughput.
        self.engine, self.max_batch, self.on_commit = engine, max_batch, on_commit
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._in_flight, self._last_commit, self._last_size = False, 0.0, 0
        # PostgreSQL: its own connection pool without the ping before each checkout (a round trip per batch); a
        # connection found dead is retried once instead. SQLite keeps the engine, whose in-process write lock the
        # other writers of this process queue on.
        self._writer = engine
        if engine.dialect.name == "postgresql":
            url = engine.url.render_as_string(hide_password=False)
            self._writer = make_engine(url, pool_pre_ping=False, pool_size=1)

    async def submit(self, delivery: Delivery) -> bool:
        """Store the delivery; True if it was new, False for a redelivery. Raises what the database raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.put((delivery, future, loop))
        return await future

    def busy(self, quiet: float = QUIET) -> bool:
        """Deliveries queued or a batch not yet committed, or one committed less than `quiet` seconds ago (more are
        likely on their way)."""
        return self._in_flight or not self._queue.empty() or time.monotonic() - self._last_commit < quiet

    def crowded(self) -> bool:
        """Deliveries queued behind the commit under way, or the last commit took many at once."""
        recent = time.monotonic() - self._last_commit < QUIET
        return not self._queue.empty() or (recent and self._last_size >= CROWD)

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
        if self._writer is not self.engine:
            self._writer.dispose()

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
            self._in_flight, self._last_commit, self._last_size = False, time.monotonic(), len(batch)
            if pulse := shared_pulse():
                pulse.beat(len(batch))
            if stopping:
                return

    def _commit(self, batch: list[_Item]) -> None:
        stored: list[bool | BaseException]
        for attempt in (1, 2):
            try:
                with transaction(self._writer) as session:
                    stored = list(inbox.store_many(session, [d for d, _, _ in batch]))
                break
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue  # a connection the database had dropped (a restart): once more, on a new one
                log.warning("group commit of %d events failed: %s", len(batch), type(exc).__name__)
                stored = [exc] * len(batch)
                break
            except Exception as exc:  # the database is down or refused the batch: every waiting request hears it
                log.warning("group commit of %d events failed: %s", len(batch), type(exc).__name__)
                stored = [exc] * len(batch)
                break
        # One wake-up per event loop for the whole batch, not one per request.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool | BaseException]]] = {}
        for (_, future, loop), value in zip(batch, stored, strict=True):
            by_loop.setdefault(loop, []).append((future, value))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits for these answers now
                loop.call_soon_threadsafe(_resolve, answers)
        if self.on_commit and not isinstance(stored[0], BaseException):
            self.on_commit()
