"""Prometheus gauges computed from the database on each scrape: the metrics summary, and the queues (the inbox's
backlog and its age, jobs by kind and status). Counters of what a process did are app/telemetry.py's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import date

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import Session, select

from app.db import utcnow
from app.inbox import InboundEvent
from app.jobs import Job, JobStatus
from app.metrics import Summary, Window, summary
from app.vocabulary import ActionStatus


class SummaryCollector(Collector):
    """Prometheus gauges computed on each scrape from the all-time summary (no window)."""

    def __init__(self, read: Callable[[], AbstractContextManager[Session]], today: Callable[[], date]) -> None:
        self._read, self._today = read, today

    def describe(self) -> list[Metric]:
        # Registering must not query the database; the names are fixed, so there is nothing to check.
        return []

    def collect(self) -> Iterator[Metric]:
        with self._read() as session:
            result = summary(session, Window(today=self._today()))
        yield from gauges(result)


class QueueCollector(Collector):
    """The inbox's backlog and the job table, as every worker process sees them (so no per-process sums)."""

    def __init__(self, read: Callable[[], AbstractContextManager[Session]]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        pending = InboundEvent.processed_at.is_(None)  # type: ignore[union-attr]
        with self._read() as session:
            count, oldest = session.exec(select(func.count(), func.min(InboundEvent.received_at)).where(pending)).one()
            by_kind = session.exec(
                select(Job.kind, Job.status, func.count())
                .where(Job.status != JobStatus.DONE)
                .group_by(Job.kind, Job.status)
            ).all()
        yield GaugeMetricFamily("aftermath_inbox_pending", "Stored alert events not yet applied to an incident", count)
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "aftermath_inbox_oldest_pending_seconds", "Age of the oldest event not yet applied (0: none)", max(age, 0.0)
        )
        jobs = GaugeMetricFamily("aftermath_jobs", "Jobs not done, by kind and status", labels=["kind", "status"])
        for kind, status, n in by_kind:
            jobs.add_metric([kind, status], n)
        yield jobs


def gauges(result: Summary) -> Iterator[Metric]:
    incidents = GaugeMetricFamily("aftermath_incidents", "Incidents by normalized severity", labels=["severity"])
    for severity, count in result.incidents.by_severity.items():
        incidents.add_metric([severity], count)
    yield incidents
    for name, figures in (("mtta", result.mtta), ("mttr", result.mttr), ("mttd", result.mttd)):
        seconds = GaugeMetricFamily(
            f"aftermath_{name}_seconds", f"{name.upper()} quantiles over all incidents", labels=["quantile"]
        )
        for q, value in (("0.5", figures.median_seconds), ("0.9", figures.p90_seconds)):
            if value is not None:
                seconds.add_metric([q], value)
        yield seconds
        yield GaugeMetricFamily(
            f"aftermath_{name}_incidents", f"Incidents the {name.upper()} is computed from", value=figures.count
        )
    actions = GaugeMetricFamily("aftermath_actions", "Actions by normalized status", labels=["status"])
    for status in ActionStatus:
        actions.add_metric([status], getattr(result.actions, status))
    yield actions
    yield GaugeMetricFamily("aftermath_actions_overdue", "Actions past due, not done", value=result.actions.overdue)
    if result.actions.completion_rate.value is not None:
        yield GaugeMetricFamily(
            "aftermath_action_completion_ratio",
            "done / (actions - won't do)",
            value=result.actions.completion_rate.value,
        )
    recurrences = GaugeMetricFamily("aftermath_recurrences", "Recurring incidents by state", labels=["actions"])
    rec = result.recurrence
    recurrences.add_metric(["all_done"], rec.recurred_after_all_actions_done)
    recurrences.add_metric(["some_open"], rec.recurred_with_actions_open)
    recurrences.add_metric(["none"], rec.recurred_without_actions)
    yield recurrences
    postmortems = GaugeMetricFamily("aftermath_postmortems", "Postmortems by progress", labels=["state"])
    for state in ("opened", "published", "published_on_time", "overdue"):
        postmortems.add_metric([state], getattr(result.postmortems, state))
    yield postmortems

    yield from learning_gauges(result)


def learning_gauges(result: Summary) -> Iterator[Metric]:
    """Whether fixes worked (effectiveness by action kind, all kinds as kind="all") and the follow-through shares."""
    outcomes = GaugeMetricFamily(
        "aftermath_action_verifications", "Done actions by verification state and action kind", labels=["kind", "state"]
    )
    held_rate = GaugeMetricFamily(
        "aftermath_action_held_ratio", "held / (held + failed + recurred), by action kind", labels=["kind"]
    )
    groups = {"all": result.effectiveness.overall, **result.effectiveness.by_kind}
    for kind, figures in groups.items():
        for state in ("pending", "held", "failed", "recurred"):
            outcomes.add_metric([kind, state], getattr(figures, state))
        if figures.held_rate.value is not None:
            held_rate.add_metric([kind], figures.held_rate.value)
    yield outcomes
    yield held_rate
    follow = GaugeMetricFamily(
        "aftermath_action_follow_through_ratio",
        "Share of decided actions done within 30/60/90 days of creation, and on time by their due date",
        labels=["within"],
    )
    ft = result.follow_through
    for label, ratio in (("30d", ft.within_30_days), ("60d", ft.within_60_days), ("90d", ft.within_90_days)):
        if ratio.value is not None:
            follow.add_metric([label], ratio.value)
    if ft.on_time.value is not None:
        follow.add_metric(["due_date"], ft.on_time.value)
    yield follow
