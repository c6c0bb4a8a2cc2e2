"""The embedded worker of `aftermath serve` on PostgreSQL: the worker's loops in a process of their own, started and
stopped with the server, so that applying the inbox never competes with serving requests for one interpreter lock.
(On SQLite the loops run as threads of the server process: see app/cli.py.)"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)
# Nice: while webhooks arrive the server process, not the worker, gets the CPU; the backlog waits durably in the inbox
# and the worker takes every idle cycle. That covers the worker's own CPU, not its database server process's: the
# applier also pauses while the server's group commits are busy (app/ingest.py's shared pulse).
NICENESS = 10
PARENT_CHECK = 0.5  # seconds between checks that the server is still there: a worker must not outlive it


def start() -> BaseProcess:
    """Start the worker process; it reads the same settings (the environment) as the server that starts it."""
    # spawn, not fork: the server already holds an engine, threads and locks that a forked child would inherit.
    process = multiprocessing.get_context("spawn").Process(
        target=_main, args=(os.getpid(),), name="aftermath-worker", daemon=True
    )
    process.start()
    return process


def stop(process: BaseProcess, timeout: float = 15.0) -> None:
    """Ask the worker to finish what it is doing and stop; kill it if it will not."""
    if process.is_alive():
        process.terminate()  # SIGTERM: the worker stops its loops between two turns
        process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(5)


def _main(parent: int) -> None:
    from app.context import build_context
    from app.logs import configure
    from app.settings import load_settings
    from app.worker import Worker

    settings = load_settings()  # the server has checked them already
    configure(settings.secrets(), settings.log_format)
    context = build_context(settings)
    os.nice(NICENESS)
    worker = Worker(context, name="embedded")
    stopping = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        # The server forwards its SIGHUP: read the mappings again (a thread: a handler may interrupt logging).
        threading.Thread(target=context.reload_mappings, name="aftermath-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops this process
    worker.start()
    while not stopping.wait(PARENT_CHECK):
        if os.getppid() != parent:
            log.warning("the server process %d is gone; the embedded worker stops", parent)
            break
    worker.stop()
    context.engine.dispose()
