"""Group commit for webhook ingest: many concurrent requests, one INSERT and one COMMIT per batch.

Each request is answered only after the transaction holding its event has committed, so a 202 still
means "durably stored"; batching only removes the per-event commit that capped throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from app import inbox
from app.db import transaction
from app.inbox import Delivery

log = logging.getLogger(__name__)
_Item = tuple[Delivery, "asyncio.Future[bool]", asyncio.AbstractEventLoop]


def _resolve(answers: list[tuple[asyncio.Future[bool], bool | BaseException]]) -> None:
    for future, value in answers:
        if future.done():
            continue  # the client went away; its event is stored all the same
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)


_RUNNING: list[GroupCommitter] = []


def ingest_busy(engine: Engine, quiet: float = 0.02) -> bool:
    """True while a committer of this process on this engine has deliveries queued or a batch not yet committed,
    or committed one less than `quiet` seconds ago (more are likely on their way).

    The embedded worker checks it between its own transactions, so that webhook answers do not queue behind them.
    """
    now = time.monotonic()
    return any(
        c.engine is engine and (c._in_flight or not c._queue.empty() or now - c._last_commit < quiet) for c in _RUNNING
    )


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
