"""Prometheus counters and histograms of what the process does: deliveries, applying the inbox, jobs, tracker calls and
polls. (Gauges read from the database at each scrape are app/prometheus.py's.) Under `aftermath serve` every process
writes them to one shared folder (prometheus-client's multiprocess mode), and /metrics sums them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app.db import utcnow

if TYPE_CHECKING:
    from app.applier import Outcome

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable: app/cli.py sets it for `serve`
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_WAITS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

DELIVERIES = Counter("aftermath_webhook_deliveries", "Webhook deliveries by source and answer", ["source", "answer"])
APPLIED = Counter("aftermath_inbox_applied_events", "Inbound events taken off the inbox, by outcome", ["outcome"])
APPLY_LAG = Histogram(
    "aftermath_apply_lag_seconds",
    "Seconds from an event's receipt until it was applied to its incident",
    buckets=_LATENCY,
)
APPLY_BATCH = Histogram("aftermath_apply_batch_seconds", "Seconds one apply transaction took", buckets=_LATENCY)
JOBS = Counter(
    "aftermath_jobs_run",
    "Job runs by kind and outcome (done, later, retry, failed, crashed, lost)",
    ["kind", "outcome"],
)
FILING_FAILURES = Counter("aftermath_filing_failures", "Filings that failed for good: the action stays unfiled")
TRACKER_CALLS = Counter(
    "aftermath_tracker_calls",
    "Calls to a tracker (a job's handler, or the poll of one target), by call and outcome",
    ["call", "outcome"],
)
RETRY_LATER = Histogram(
    "aftermath_tracker_retry_later_seconds",
    "Tracker answers to wait and retry (rate limits, 429, 5xx, timeouts), by call, with the seconds waited",
    ["call"],
    buckets=_WAITS,
)
POLL_SECONDS = Histogram(
    "aftermath_poll_duration_seconds", "Seconds one poll cycle over every target took", buckets=_LATENCY
)
POLL_ERRORS = Counter("aftermath_poll_errors", "Polls of one target that failed, by tracker", ["tracker"])


def applied(outcome: Outcome, seconds: float) -> None:
    APPLIED.labels("applied").inc(outcome.events - outcome.failed)
    if outcome.failed:
        APPLIED.labels("failed").inc(outcome.failed)
    APPLY_BATCH.observe(seconds)
    if outcome.received:
        now = utcnow()
        for received in outcome.received:
            APPLY_LAG.observe(max((now - received).total_seconds(), 0.0))


def exposition() -> bytes:
    """This process's metrics, or every process's when they share a folder."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if not folder:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
